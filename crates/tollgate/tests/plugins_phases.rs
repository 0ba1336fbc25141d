//! The plugin phases after access: body_filter (response-transformer on
//! JSON bodies) and log (file-log, for proxied requests and for requests a
//! plugin answered early).
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1, post_form};
use support::gateway::{temp_dir, Gateway};

#[tokio::test(flavor = "multi_thread")]
async fn file_log_writes_a_line_for_proxied_and_early_answered_requests() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    let log = temp_dir("file-log").join("requests.log");
    for form in [
        format!("name=file-log&config.path={}", log.display()),
        "name=key-auth".to_owned(),
    ] {
        support::client::created(&c, &format!("{admin}/services/s/plugins"), &form).await;
    }
    let got = post_form(&c, &format!("{admin}/consumers"), "username=alice").await;
    let alice = got.json()["id"].as_str().unwrap().to_owned();
    post_form(&c, &format!("{admin}/consumers/alice/key-auth"), "key=k1").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let ok = get(&c, &format!("{}/api/a?x=1", gw.url()), &[("apikey", "k1")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let refused = get(&c, &format!("{}/api/b", gw.url()), &[]).await;
    assert_eq!(refused.status, 401);

    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(first["request"]["uri"], "/api/a?x=1");
    assert_eq!(first["request"]["method"], "GET");
    assert_eq!(first["response"]["status"], 200);
    assert_eq!(first["response"]["size"], ok.body.len() as u64);
    assert_eq!(first["consumer"]["id"], alice.as_str());
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert!(first["route"]["id"].is_string() && first["service"]["id"].is_string());
    assert_eq!(first["request"]["id"].as_str(), ok.header("x-request-id"));
    assert_eq!(second["request"]["uri"], "/api/b");
    assert_eq!(second["response"]["status"], 401);
    assert!(second["consumer"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn response_transformer_edits_json_bodies() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    support::client::created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=response-transformer&config.remove.json=headers&config.rename.json=method:verb\
         &config.add.json=added:2&config.add.json_types=number&config.add.headers=x-added:1",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let got = get(&c, &format!("{}/api/x", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("x-added"), Some("1"));
    let j = got.json();
    assert!(j.get("headers").is_none(), "{j}");
    assert_eq!(j["verb"], "GET");
    assert_eq!(j["added"], 2);
    assert_eq!(j["backend"], "b");
    // The length changed: the answer is sent chunked, not with the backend's length.
    assert_eq!(got.header("content-length"), None);
}
