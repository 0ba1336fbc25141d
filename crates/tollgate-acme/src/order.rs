//! One ACME order for one name: the challenge answered by the data plane
//! (HTTP-01 when the node has a plain HTTP listener, else TLS-ALPN-01),
//! then the CSR, then the certificate chain.

use crate::AcmeError;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;
use tollgate_tls::acme::Challenges;

/// How long the CA may take to validate and to issue.
const PATIENCE: Duration = Duration::from_secs(90);

/// Challenge answers published for one order, withdrawn when it ends
/// (however it ends).
struct Published<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.challenges.remove_http(t);
        }
        for n in &self.names {
            self.challenges.remove_alpn(n);
        }
    }
}

fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.5)
        .timeout(PATIENCE)
}

/// Orders a certificate for `name` with `key`; returns the chain (PEM).
pub(crate) async fn issue(
    account: &Account,
    name: &str,
    challenges: &Challenges,
    http01: bool,
    key: &rcgen::KeyPair,
) -> Result<String, AcmeError> {
    let ids = [Identifier::Dns(name.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut published = Published {
        challenges,
        tokens: Vec::new(),
        names: Vec::new(),
    };
    let kind = if http01 {
        ChallengeType::Http01
    } else {
        ChallengeType::TlsAlpn01
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {name} is {other:?}"
                )))
            }
        }
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            AcmeError::Order(format!("the CA offers no {kind:?} challenge for {name}"))
        })?;
        let proof = challenge.key_authorization();
        if http01 {
            challenges.set_http(&challenge.token, proof.as_str());
            published.tokens.push(challenge.token.clone());
        } else {
            challenges
                .set_alpn(name, proof.digest().as_ref())
                .map_err(|e| AcmeError::Key(e.to_string()))?;
            published.names.push(name.to_owned());
        }
        challenge.set_ready().await?;
    }
    let status = order.poll_ready(&polling()).await?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        return Err(AcmeError::Order(format!(
            "order for {name} is {status:?} {detail}"
        )));
    }
    drop(published);
    let csr = rcgen::CertificateParams::new(vec![name.to_owned()])
        .and_then(|p| p.serialize_request(key))
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    order.finalize_csr(csr.der()).await?;
    Ok(order.poll_certificate(&polling()).await?)
}
