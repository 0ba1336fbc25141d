//! API versioning as docs/api-versioning.md describes it: by path prefix
//! (strip_path), by header (`Accept-Version`, a `~*` regex) and by host,
//! with the shipped example file's routes against two real backends.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::Gateway;

#[tokio::test(flavor = "multi_thread")]
async fn path_header_and_host_each_select_an_api_version() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let example = include_str!("../../../examples/api-versioning.yml")
        .replace("http://127.0.0.1:9001", &v1.url())
        .replace("http://127.0.0.1:9002", &v2.url());
    let gw = Gateway::start(&example, &[]);
    let c = http1();
    let url = |p: &str| format!("{}{p}", gw.url());
    let at = |g: &support::client::Got| {
        (
            g.json()["backend"].as_str().unwrap().to_owned(),
            g.json()["uri"].as_str().unwrap().to_owned(),
        )
    };

    // Path prefix, stripped.
    assert_eq!(
        at(&get(&c, &url("/v1/orders/42"), &[]).await),
        ("v1".into(), "/orders/42".into())
    );
    assert_eq!(
        at(&get(&c, &url("/v2/orders/42"), &[]).await),
        ("v2".into(), "/orders/42".into())
    );
    // Header: 2 and 2.x go to v2; no header or another version stays on v1.
    for (version, backend) in [
        (Some("2"), "v2"),
        (Some("2.1"), "v2"),
        (Some("1"), "v1"),
        (None, "v1"),
    ] {
        let headers: Vec<(&str, &str)> =
            version.map(|v| ("accept-version", v)).into_iter().collect();
        let got = get(&c, &url("/orders/7"), &headers).await;
        assert_eq!(
            at(&got),
            (backend.into(), "/orders/7".into()),
            "{version:?}"
        );
    }
    // Host.
    let got = get(&c, &url("/orders/9"), &[("host", "v2.api.example.com")]).await;
    assert_eq!(at(&got), ("v2".into(), "/orders/9".into()));
}
