//! A real Pebble ACME test CA (Debian's `pebble`; `.ci/run` installs it)
//! on loopback: it validates HTTP-01 on `http_port` and TLS-ALPN-01 on
//! `tls_port` of 127.0.0.1, and resolves names through the test's DNS
//! server. Its own HTTPS certificate comes from a [`TestPki`].

use super::tls::TestPki;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pebble {
    child: Child,
    /// The ACME directory URL.
    pub directory: String,
    management: u16,
    /// The authority Pebble's HTTPS certificate chains to (give its
    /// `ca_file` to the gateway's `lua_ssl_trusted_certificate`).
    pub pki: TestPki,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    pub fn start(dir: &Path, http_port: u16, tls_port: u16, dns: std::net::SocketAddr) -> Pebble {
        let pki = TestPki::new(&dir.join("pebble-pki"));
        let (listen, management) = (super::redis::free_port(), super::redis::free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": pki.cert_file,
                "privateKey": pki.key_file,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let file = dir.join("pebble.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&file)
            .arg("-dnsserver")
            .arg(dns.to_string())
            // No artificial validation delay, no rejected nonces, and a
            // fresh validation for every order.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (apt-get install pebble) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pebble {
            child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            pki,
        }
    }

    /// The root this run of Pebble issues under (PEM), from its
    /// management interface.
    pub async fn root_pem(&self) -> String {
        let config = self.pki.client_config(true, &[b"http/1.1"]);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.management));
        let got = super::tls::https(config, addr, "localhost", "GET", "/roots/0", None)
            .await
            .unwrap();
        assert_eq!(got.status, 200, "{}", got.body);
        got.body
    }
}
