//! Targets and services given by host name, resolved through a real DNS
//! server on loopback (`dns_resolver`): one balancer entry per address,
//! each with its own health, and new addresses followed when the records'
//! time-to-live runs out.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::backend::Backend;
use support::client::{get, http1, send, HttpClient};
use support::dns::DnsServer;
use support::gateway::Gateway;

/// Backends named `names` on 127.0.0.2, 127.0.0.3, … all on one port (as
/// the servers behind one DNS name are), and that port.
async fn backends_on_one_port(names: &[&str]) -> (Vec<Backend>, u16) {
    let first = Backend::start_with(names[0], "127.0.0.2:0".parse().unwrap(), Duration::ZERO).await;
    let port = first.addr.port();
    let mut all = vec![first];
    for (i, name) in names.iter().enumerate().skip(1) {
        let addr = SocketAddr::from(([127, 0, 0, 2 + i as u8], port));
        all.push(Backend::start_with(name, addr, Duration::ZERO).await);
    }
    (all, port)
}

/// The gateway on `config`, asking `dns` about names, with its Admin API.
fn gateway(config: &str, dns: &DnsServer) -> Gateway {
    let resolver = dns.addr.to_string();
    Gateway::start(
        config,
        &[
            ("TOLLGATE_DNS_RESOLVER", &resolver),
            ("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
    )
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sends `n` GETs one after another; counts answers by backend name
/// (other statuses count under `status N`).
async fn spread(client: &HttpClient, url: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let got = get(client, url, &[]).await;
        let key = if got.status == 200 {
            got.json()["backend"].as_str().unwrap_or("?").to_owned()
        } else {
            format!("status {}", got.status)
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// The Admin API's view of one target: its health word and its
/// addresses' (`ip:port` → health).
async fn target_health(
    client: &HttpClient,
    admin: &str,
    upstream: &str,
) -> (String, BTreeMap<String, String>) {
    let got = get(client, &format!("{admin}/upstreams/{upstream}/health"), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let body = got.json();
    let t = &body["data"][0];
    let addresses = t["data"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                format!("{}:{}", a["ip"].as_str().unwrap(), a["port"]),
                a["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (t["health"].as_str().unwrap().to_owned(), addresses)
}

/// Waits up to 5 s for `check` (see [`support::eventually`]).
async fn eventually<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    support::eventually(what, Duration::from_secs(5), check).await
}

fn config(port: u16, passive: &str) -> String {
    format!(
        "_format_version: \"3.0\"
upstreams:
  - name: api.up
{passive}    targets:
      - target: api.test:{port}
services:
  - name: api
    host: api.up
    port: 80
    routes:
      - paths: [/api]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_target_balances_over_its_addresses_and_follows_a_dns_change_after_the_ttl() {
    let dns = DnsServer::start(1).await;
    let (_backends, port) = backends_on_one_port(&["a", "b", "c"]).await;
    dns.set("api.test", &[ip(2), ip(3)]);
    let gw = gateway(&config(port, ""), &dns);
    let (client, admin, url) = (http1(), gw.admin_url(), format!("{}/api", gw.url()));
    let two: BTreeMap<String, String> = [2, 3]
        .map(|i| (format!("127.0.0.{i}:{port}"), "HEALTHCHECKS_OFF".to_owned()))
        .into();
    eventually("both addresses listed", || async {
        target_health(&client, &admin, "api.up").await.1 == two
    })
    .await;
    // Each address is an entry of its own: round-robin alternates.
    let counts = spread(&client, &url, 20).await;
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&10), Some(&10)),
        "{counts:?}"
    );

    // The record changes; with a 1 s TTL the next lookup sees it.
    dns.set("api.test", &[ip(4)]);
    let took = eventually("traffic moves to the new address", || async {
        spread(&client, &url, 4).await.get("c") == Some(&4)
    })
    .await;
    eprintln!("traffic followed the new record after {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let counts = spread(&client, &url, 10).await;
    assert_eq!(counts.get("c"), Some(&10), "{counts:?}");
    let (health, addresses) = target_health(&client, &admin, "api.up").await;
    assert_eq!(health, "HEALTHCHECKS_OFF");
    assert_eq!(
        addresses.keys().collect::<Vec<_>>(),
        [&format!("127.0.0.4:{port}")]
    );
    assert!(dns.queries("api.test") >= 2, "{}", dns.queries("api.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_of_a_name_has_its_own_health_and_a_dead_one_costs_no_errors() {
    let dns = DnsServer::start(1).await;
    let (mut backends, port) = backends_on_one_port(&["a", "b"]).await;
    dns.set("api.test", &[ip(2), ip(3)]);
    // One connection failure takes an address out (no cool-down).
    let passive =
        "    healthchecks:\n      passive:\n        unhealthy: {tcp_failures: 1, cooldown: 0}\n";
    let gw = gateway(&config(port, passive), &dns);
    let (client, admin, url) = (http1(), gw.admin_url(), format!("{}/api", gw.url()));
    eventually("both addresses listed", || async {
        target_health(&client, &admin, "api.up").await.1.len() == 2
    })
    .await;
    let (a_addr, b_addr) = (format!("127.0.0.2:{port}"), format!("127.0.0.3:{port}"));
    let target = format!("api.test:{port}");
    let mark = |address: String, verdict: &'static str| {
        let url = format!("{admin}/upstreams/api.up/targets/{target}/{address}/{verdict}");
        let client = client.clone();
        async move { send(&client, "PUT", &url, None, &[]).await.status }
    };

    // One address marked down through the Admin API: the name stays up.
    assert_eq!(mark(b_addr.clone(), "unhealthy").await, 204);
    let (health, addresses) = target_health(&client, &admin, "api.up").await;
    assert_eq!(health, "HEALTHY");
    assert_eq!(addresses[&a_addr], "HEALTHY");
    assert_eq!(addresses[&b_addr], "UNHEALTHY");
    let counts = spread(&client, &url, 10).await;
    assert_eq!(counts.get("a"), Some(&10), "{counts:?}");
    assert_eq!(mark(b_addr.clone(), "healthy").await, 204);
    let counts = spread(&client, &url, 10).await;
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&5), Some(&5)),
        "{counts:?}"
    );
    assert_eq!(mark(format!("127.0.0.9:{port}"), "unhealthy").await, 404);

    // The server behind one address dies: requests are retried on the
    // other, and only that address is marked down by passive checks.
    drop(backends.remove(0));
    let counts = spread(&client, &url, 20).await;
    assert_eq!(counts.get("b"), Some(&20), "{counts:?}");
    let (health, addresses) = target_health(&client, &admin, "api.up").await;
    assert_eq!(health, "HEALTHY");
    assert_eq!(addresses[&a_addr], "UNHEALTHY");
    assert_eq!(addresses[&b_addr], "HEALTHY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_without_address_reads_dns_error_and_answers_503_name_resolution_failed() {
    let dns = DnsServer::start(1).await;
    let config = "_format_version: \"3.0\"
upstreams:
  - name: miss.up
    targets:
      - target: missing.test:80
services:
  - name: miss
    host: miss.up
    port: 80
    routes:
      - paths: [/miss]
  - name: nowhere
    host: nowhere.test
    port: 80
    routes:
      - paths: [/nowhere]
";
    let gw = gateway(config, &dns);
    let (client, admin) = (http1(), gw.admin_url());
    eventually("the target reads DNS_ERROR", || async {
        target_health(&client, &admin, "miss.up").await.0 == "DNS_ERROR"
    })
    .await;
    for path in ["/miss", "/nowhere"] {
        let got = get(&client, &format!("{}{path}", gw.url()), &[]).await;
        assert_eq!(got.status, 503, "{path}: {}", got.text());
        assert_eq!(got.json()["message"], "name resolution failed", "{path}");
    }
    assert!(dns.queries("nowhere.test") >= 1);
}
