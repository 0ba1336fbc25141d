//! The Kong-compatible Admin API against a running node with a real SQLite
//! file: entity endpoints, Kong's request forms and error shapes,
//! pagination, persistence across restarts and `kill -9`, and changes
//! reaching the proxy.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::{get, http1, post_form, send, send_json};
use support::gateway::{binary, temp_dir, Gateway};

#[tokio::test(flavor = "multi_thread")]
async fn services_and_routes_created_by_form_reach_the_proxy_within_100ms() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();

    let got = post_form(
        &c,
        &format!("{admin}/services"),
        &format!("name=example-service&url={}/v1", b.url()),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let svc = got.json();
    assert_eq!(svc["name"], "example-service");
    assert_eq!(svc["protocol"], "http");
    assert_eq!(svc["host"], "127.0.0.1");
    assert_eq!(svc["port"], b.addr.port());
    assert_eq!(svc["path"], "/v1");
    assert_eq!(svc["retries"], 5);
    assert_eq!(svc["connect_timeout"], 60000);
    assert!(svc["tags"].is_null() && svc["client_certificate"].is_null());
    assert!(uuid_like(svc["id"].as_str().unwrap()));
    assert!(svc["created_at"].as_i64().unwrap() > 1_700_000_000);

    let got = post_form(
        &c,
        &format!("{admin}/services/example-service/routes"),
        "name=r1&paths[]=/api&paths[]=/other",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let route = got.json();
    assert_eq!(route["paths"], json!(["/api", "/other"]));
    assert_eq!(route["service"]["id"], svc["id"]);
    assert_eq!(route["strip_path"], true);
    assert_eq!(route["protocols"], json!(["http", "https"]));
    let acked = Instant::now();

    // Visible on the proxy within 100 ms of the acknowledgement.
    let url = format!("{}/api/users", gw.url());
    loop {
        let got = get(&c, &url, &[]).await;
        if got.status == 200 {
            assert_eq!(got.json()["uri"], "/v1/users");
            break;
        }
        assert!(
            acked.elapsed() < Duration::from_millis(100),
            "not routed after {:?}",
            acked.elapsed()
        );
    }

    // PATCH merges; the proxy follows.
    let got = send_json(
        &c,
        "PATCH",
        &format!("{admin}/routes/r1"),
        &json!({"paths": ["/v2api"]}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["name"], "r1");
    assert_eq!(
        get(&c, &format!("{}/v2api/x", gw.url()), &[]).await.status,
        200
    );
    assert_eq!(get(&c, &url, &[]).await.status, 404);

    // GET by name and by id, nested and not.
    assert_eq!(
        get(&c, &format!("{admin}/services/example-service"), &[])
            .await
            .json()["id"],
        svc["id"]
    );
    let id = svc["id"].as_str().unwrap();
    assert_eq!(
        get(&c, &format!("{admin}/services/{id}"), &[]).await.status,
        200
    );
    let list = get(&c, &format!("{admin}/services/example-service/routes"), &[])
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&c, &format!("{admin}/routes/r1/service"), &[])
            .await
            .json()["name"],
        "example-service"
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_kongs_shapes() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();

    // Schema violation naming the field.
    let got = post_form(
        &c,
        &format!("{admin}/services"),
        "name=a&port=abc&host=x.internal",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    let v = got.json();
    assert_eq!(v["code"], 2);
    assert_eq!(v["name"], "schema violation");
    assert!(v["fields"]["port"].is_string(), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("schema violation (port: "),
        "{v}"
    );

    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/services"),
        &json!({"name": "b", "host": "x", "prot": 1}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["fields"]["prot"], "unknown field");

    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/services"),
        &json!({"name": "c"}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert!(
        got.json()["fields"].to_string().contains("host"),
        "{}",
        got.text()
    );

    // Unique violation.
    assert_eq!(
        post_form(&c, &format!("{admin}/services"), "name=dup&host=x.internal")
            .await
            .status,
        201
    );
    let got = post_form(&c, &format!("{admin}/services"), "name=dup&host=y.internal").await;
    assert_eq!(got.status, 409);
    assert_eq!(got.json()["code"], 5);
    assert_eq!(
        got.json()["message"],
        "UNIQUE violation detected on '{name=\"dup\"}'"
    );

    // Foreign key violation.
    let missing = "7d1b4b1e-1b1b-4b1b-8b1b-1b1b1b1b1b1b";
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/routes"),
        &json!({"paths": ["/x"], "service": {"id": missing}}),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert_eq!(got.json()["code"], 4);
    assert!(got.json()["message"].as_str().unwrap().contains(missing));

    // Not found, method not allowed, unsupported media type, bad JSON.
    let got = get(&c, &format!("{admin}/services/nope"), &[]).await;
    assert_eq!(
        (got.status, got.json()),
        (404, json!({"message": "Not found"}))
    );
    assert_eq!(
        get(&c, &format!("{admin}/nothing-here"), &[]).await.status,
        404
    );
    let got = send(&c, "DELETE", &format!("{admin}/services"), None, &[]).await;
    assert_eq!(
        (got.status, got.json()),
        (405, json!({"message": "Method not allowed"}))
    );
    let got = send(
        &c,
        "POST",
        &format!("{admin}/services"),
        Some(("text/csv", "a,b")),
        &[],
    )
    .await;
    assert_eq!(got.status, 415);
    let got = send(
        &c,
        "POST",
        &format!("{admin}/services"),
        Some(("application/json", "{nope")),
        &[],
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["message"], "Cannot parse JSON body");

    // A failed write changed nothing.
    let list = get(&c, &format!("{admin}/services"), &[]).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Deleting a service that routes use is refused; deleting a missing one is 204.
    assert_eq!(
        post_form(&c, &format!("{admin}/services/dup/routes"), "paths[]=/d")
            .await
            .status,
        201
    );
    let got = send(&c, "DELETE", &format!("{admin}/services/dup"), None, &[]).await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["code"], 4);
    assert_eq!(
        send(
            &c,
            "DELETE",
            &format!("{admin}/services/never-was"),
            None,
            &[]
        )
        .await
        .status,
        204
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_over_250_services_and_tag_filters() {
    let gw = Gateway::start_sqlite(&[("TOLLGATE_ACCESS_LOG", "off")]);
    let c = http1();
    let admin = gw.admin_url();
    for i in 0..250 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let got = post_form(
            &c,
            &format!("{admin}/services"),
            &format!("name=s{i}&host=h{i}.internal&tags[]={tag}&tags[]=all"),
        )
        .await;
        assert_eq!(got.status, 201, "{}", got.text());
    }
    let mut seen = Vec::new();
    let mut next = Some(format!("{admin}/services"));
    let mut pages = 0;
    while let Some(url) = next {
        let page = get(&c, &url, &[]).await.json();
        pages += 1;
        for s in page["data"].as_array().unwrap() {
            seen.push(s["name"].as_str().unwrap().to_owned());
        }
        next = page["next"].as_str().map(|p| format!("{admin}{p}"));
        if next.is_none() {
            assert!(page["offset"].is_null());
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);

    let page = get(&c, &format!("{admin}/services?size=1000&tags=even"), &[])
        .await
        .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 125);
    let page = get(
        &c,
        &format!("{admin}/services?size=1000&tags=even,odd"),
        &[],
    )
    .await
    .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
    let page = get(
        &c,
        &format!("{admin}/services?size=1000&tags=even/odd"),
        &[],
    )
    .await
    .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 250);
    let got = get(&c, &format!("{admin}/services?size=1001"), &[]).await;
    assert_eq!(got.status, 400);
    assert_eq!(
        got.json()["message"],
        "size must be an integer between 1 and 1000"
    );
    let got = get(&c, &format!("{admin}/services?offset=garbage"), &[]).await;
    assert_eq!(got.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn put_upserts_and_delete_cascades_targets() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let got = send_json(
        &c,
        "PUT",
        &format!("{admin}/upstreams/pool.internal"),
        &json!({}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["name"], "pool.internal");
    assert_eq!(got.json()["algorithm"], "round-robin");
    let got = post_form(
        &c,
        &format!("{admin}/upstreams/pool.internal/targets"),
        &format!("target={}", b.addr),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["weight"], 100);
    let got = send_json(
        &c,
        "PUT",
        &format!("{admin}/services/s"),
        &json!({"host": "pool.internal", "port": 80}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let created_at = got.json()["created_at"].clone();
    assert_eq!(
        post_form(&c, &format!("{admin}/services/s/routes"), "paths[]=/")
            .await
            .status,
        201
    );
    assert_eq!(
        get(&c, &format!("{}/via-upstream", gw.url()), &[])
            .await
            .status,
        200
    );

    // PUT again replaces (omitted fields back to defaults) and keeps the id and created_at.
    let got = send_json(
        &c,
        "PUT",
        &format!("{admin}/services/s"),
        &json!({"host": "pool.internal", "retries": 1}),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["retries"], 1);
    assert_eq!(got.json()["created_at"], created_at);

    let health = get(&c, &format!("{admin}/upstreams/pool.internal/health"), &[])
        .await
        .json();
    assert_eq!(health["data"][0]["health"], "HEALTHCHECKS_OFF");

    assert_eq!(
        send(
            &c,
            "DELETE",
            &format!("{admin}/upstreams/pool.internal"),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        get(&c, &format!("{admin}/upstreams/pool.internal/targets"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_survives_restart_and_kill_9_during_a_write_burst() {
    let gw = Gateway::start_sqlite(&[("TOLLGATE_ACCESS_LOG", "off")]);
    let admin = gw.admin_url();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let c = http1();
            for i in 0..100_000 {
                let got = send_json(
                    &c,
                    "POST",
                    &format!("{admin}/services"),
                    &json!({"name": format!("svc{i}"), "host": "h.internal"}),
                )
                .await;
                if got.status != 201 {
                    break;
                }
                acked.lock().unwrap().push(format!("svc{i}"));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // kill -9 while writes are in flight.
    let gw = tokio::task::block_in_place(|| gw.kill9_and_restart());
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few writes before the kill: {}",
        acked.len()
    );
    let c = http1();
    let page = get(&c, &format!("{}/services?size=1000", gw.admin_url()), &[])
        .await
        .json();
    let mut names: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let mut next = page["next"].as_str().map(str::to_owned);
    while let Some(p) = next {
        let page = get(&c, &format!("{}{p}", gw.admin_url()), &[]).await.json();
        names.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned()),
        );
        next = page["next"].as_str().map(str::to_owned);
    }
    for name in &acked {
        assert!(
            names.contains(name),
            "acknowledged write {name} lost after kill -9"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn db_less_refuses_writes_with_code_12_and_post_config_replaces_everything() {
    let b = Backend::start("b").await;
    let cfg = format!("_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - name: r\n    paths: [/old]\n", b.url());
    let gw = Gateway::start(&cfg, &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
    let c = http1();
    let admin = gw.admin_url();
    assert_eq!(
        get(&c, &format!("{admin}/services/s"), &[]).await.json()["host"],
        "127.0.0.1"
    );
    let got = post_form(&c, &format!("{admin}/services"), "name=x&host=y.internal").await;
    assert_eq!(got.status, 405);
    assert_eq!(got.json()["code"], 12);
    assert_eq!(
        got.json()["message"],
        "cannot create 'services' entities when not using a database"
    );

    let new = format!("_format_version: \"3.0\"\nservices:\n- name: s2\n  url: {}\n  routes:\n  - paths: [/new]\n", b.url());
    let got = send(
        &c,
        "POST",
        &format!("{admin}/config"),
        Some(("application/x-yaml", &new)),
        &[],
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(get(&c, &format!("{}/new", gw.url()), &[]).await.status, 200);
    assert_eq!(get(&c, &format!("{}/old", gw.url()), &[]).await.status, 404);

    let got = send(
        &c,
        "POST",
        &format!("{admin}/config"),
        Some((
            "application/json",
            "{\"_format_version\":\"3.0\",\"services\":[{\"name\":\"z\"}]}",
        )),
        &[],
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["code"], 14);
    // Still the previous configuration.
    assert_eq!(get(&c, &format!("{}/new", gw.url()), &[]).await.status, 200);
    let exported = get(&c, &format!("{admin}/config"), &[]).await.json();
    assert!(exported["config"].as_str().unwrap().contains("s2"));
}

#[test]
fn db_import_and_export_round_trip_through_the_sqlite_file() {
    let dir = temp_dir("dbimport");
    let file = dir.join("in.yml");
    std::fs::write(
        &file,
        "_format_version: \"3.0\"\nservices:\n- name: imported\n  url: http://127.0.0.1:9/a\n  routes:\n  - name: ir\n    paths: [/i]\nupstreams:\n- name: u.internal\n  targets: [{target: \"127.0.0.1:9\"}]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(binary())
            .args(args)
            .env("TOLLGATE_PREFIX", dir.join("prefix"))
            .env("TOLLGATE_DATABASE", "sqlite")
            .output()
            .unwrap()
    };
    let out = run(&["config", "db_import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export = dir.join("out.json");
    let out = run(&["config", "db_export", export.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["services"][0]["name"], "imported");
    assert_eq!(v["routes"][0]["name"], "ir");
    assert_eq!(v["targets"][0]["target"], "127.0.0.1:9");
    // The export is itself a valid declarative file.
    let out = std::process::Command::new(binary())
        .args(["check"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "_format_version: \"3.0\"\nservices: [{name: x}]\n").unwrap();
    let out = run(&["config", "db_import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_is_required_when_set_and_public_admin_needs_one() {
    let gw = Gateway::start_sqlite(&[("TOLLGATE_ADMIN_TOKEN", "s3cret")]);
    let c = http1();
    let admin = gw.admin_url();
    assert_eq!(get(&c, &format!("{admin}/services"), &[]).await.status, 401);
    assert_eq!(
        get(
            &c,
            &format!("{admin}/services"),
            &[("authorization", "Bearer s3cret")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(
            &c,
            &format!("{admin}/services"),
            &[("kong-admin-token", "s3cret")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(
            &c,
            &format!("{admin}/services"),
            &[("kong-admin-token", "wrong!")]
        )
        .await
        .status,
        401
    );

    let dir = temp_dir("public-admin");
    let out = std::process::Command::new(binary())
        .arg("run")
        .env("TOLLGATE_PREFIX", dir.join("p"))
        .env("TOLLGATE_PROXY_LISTEN", "127.0.0.1:0")
        .env("TOLLGATE_STATUS_LISTEN", "off")
        .env("TOLLGATE_ADMIN_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_token"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn root_status_and_tags_endpoints_answer() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let root = get(&c, &format!("{admin}/"), &[]).await.json();
    assert_eq!(root["configuration"]["database"], "sqlite");
    assert!(root["version"].is_string());
    assert_eq!(
        get(&c, &format!("{admin}/status"), &[]).await.json()["database"]["reachable"],
        true
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services"),
            "name=t&host=h.internal&tags=blue"
        )
        .await
        .status,
        201
    );
    let tags = get(&c, &format!("{admin}/tags/blue"), &[]).await.json();
    assert_eq!(tags["data"][0]["entity_name"], "services");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_percent_escapes_in_admin_paths_are_answered_not_crashed_on() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=a@b")
            .await
            .status,
        201
    );
    assert_eq!(
        get(&c, &format!("{admin}/consumers/a%40b"), &[])
            .await
            .status,
        200
    );
    let got = support::client::raw(
        gw.admin.unwrap(),
        "GET /consumers/%a\u{e9} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".as_bytes(),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 404"), "{got}");
    assert_eq!(
        get(&c, &format!("{admin}/consumers/a%40b"), &[])
            .await
            .status,
        200
    );
}
