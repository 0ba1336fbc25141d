//! Basic-auth password hashing: argon2id with a random salt, PHC string
//! format. The Admin API never stores or returns a clear-text password.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;

/// Hashes `password` with argon2id (default parameters).
pub fn hash(password: &str) -> Result<String, String> {
    // A v4 UUID's 122 random bits (from the OS) make the 16-byte salt.
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| format!("password salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("mypassword").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(b"mypassword", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
    }
}
