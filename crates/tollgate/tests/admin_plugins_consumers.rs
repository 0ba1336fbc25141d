//! Admin API: plugins (config validated against each plugin's schema when
//! written), consumers and their credentials, against a running node with a
//! real SQLite file.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::client::{get, http1, post_form, send, send_json};
use support::gateway::Gateway;

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_plugin_calls_return_201_with_kongs_shape() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services"),
            "name=example-service&url=http://127.0.0.1:9"
        )
        .await
        .status,
        201
    );

    // curl -X POST .../services/example-service/plugins --data "name=rate-limiting" --data "config.minute=100"
    let got = post_form(
        &c,
        &format!("{admin}/services/example-service/plugins"),
        "name=rate-limiting&config.minute=100",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let p = got.json();
    assert_eq!(p["name"], "rate-limiting");
    assert_eq!(p["config"]["minute"], 100);
    assert_eq!(p["config"]["policy"], "local");
    assert_eq!(p["config"]["limit_by"], "consumer");
    assert_eq!(p["config"]["error_code"], 429);
    assert!(p["config"]["second"].is_null());
    assert_eq!(p["enabled"], true);
    assert_eq!(p["protocols"], json!(["grpc", "grpcs", "http", "https"]));
    assert!(p["service"]["id"].is_string());
    assert!(p["route"].is_null() && p["consumer"].is_null());
    assert!(p["id"].is_string() && p["created_at"].is_i64());

    let got = post_form(
        &c,
        &format!("{admin}/services/example-service/plugins"),
        "name=jwt",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["config"]["key_claim_name"], "iss");
    assert_eq!(got.json()["config"]["uri_param_names"], json!(["jwt"]));

    // Listed under the service, globally, and as enabled in the cluster.
    let list = get(
        &c,
        &format!("{admin}/services/example-service/plugins"),
        &[],
    )
    .await
    .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        get(&c, &format!("{admin}/plugins"), &[]).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let root = get(&c, &format!("{admin}/"), &[]).await.json();
    assert_eq!(
        root["plugins"]["enabled_in_cluster"],
        json!(["jwt", "rate-limiting"])
    );
    assert!(root["plugins"]["available_on_server"]["rate-limiting"]["priority"].is_i64());
    let enabled = get(&c, &format!("{admin}/plugins/enabled"), &[])
        .await
        .json();
    assert!(enabled["enabled_plugins"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "key-auth"));

    // PATCH merges config fields.
    let id = p["id"].as_str().unwrap();
    let got = send_json(
        &c,
        "PATCH",
        &format!("{admin}/plugins/{id}"),
        &json!({"config": {"hour": 1000}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["config"]["minute"], 100);
    assert_eq!(got.json()["config"]["hour"], 1000);

    // The same plugin twice on one service is a unique violation.
    let got = post_form(
        &c,
        &format!("{admin}/services/example-service/plugins"),
        "name=jwt",
    )
    .await;
    assert_eq!(got.status, 409, "{}", got.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_configs_are_validated_when_written() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let got = post_form(
        &c,
        &format!("{admin}/plugins"),
        "name=rate-limiting&config.minute=abc",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    let v = got.json();
    assert_eq!(v["code"], 2);
    assert!(v["fields"]["config"]["minute"].is_string(), "{v}");

    let got = post_form(
        &c,
        &format!("{admin}/plugins"),
        "name=rate-limiting&config.minute=100&config.bogus=1",
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["fields"]["config"]["bogus"], "unknown field");

    let got = post_form(&c, &format!("{admin}/plugins"), "name=rate-limiting").await;
    assert_eq!(got.status, 400, "{}", got.text());

    let got = post_form(&c, &format!("{admin}/plugins"), "name=no-such-plugin").await;
    assert_eq!(got.status, 400);
    assert_eq!(
        got.json()["fields"]["name"],
        "plugin 'no-such-plugin' not enabled; add it to the 'plugins' configuration property"
    );

    let got = post_form(
        &c,
        &format!("{admin}/plugins"),
        "name=rate-limiting&config.minute=100&config.hour=10",
    )
    .await;
    assert_eq!(got.status, 400);
    // Nothing was stored by the failed writes.
    assert_eq!(
        get(&c, &format!("{admin}/plugins"), &[]).await.json()["data"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_and_credentials_with_generated_keys_and_hashed_passwords() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let got = post_form(&c, &format!("{admin}/consumers"), "username=admin").await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert!(got.json()["custom_id"].is_null());
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=admin")
            .await
            .status,
        409
    );
    assert_eq!(
        send_json(&c, "POST", &format!("{admin}/consumers"), &json!({}))
            .await
            .status,
        400
    );

    let got = post_form(
        &c,
        &format!("{admin}/consumers/admin/basic-auth"),
        "username=admin&password=mypassword",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let pw = got.json()["password"].as_str().unwrap().to_owned();
    assert!(pw.starts_with("$argon2id$"), "password not hashed: {pw}");
    assert!(!got.text().contains("mypassword"));

    let got = post_form(&c, &format!("{admin}/consumers/admin/key-auth"), "").await;
    assert_eq!(got.status, 201, "{}", got.text());
    let key = got.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    let got = post_form(
        &c,
        &format!("{admin}/consumers/admin/key-auth"),
        &format!("key={key}"),
    )
    .await;
    assert_eq!(got.status, 409, "duplicate key: {}", got.text());

    let got = post_form(
        &c,
        &format!("{admin}/consumers/admin/jwt"),
        "algorithm=RS256",
    )
    .await;
    assert_eq!(
        got.status,
        400,
        "RS256 without rsa_public_key: {}",
        got.text()
    );
    let got = post_form(&c, &format!("{admin}/consumers/admin/jwt"), "").await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["algorithm"], "HS256");
    assert!(got.json()["secret"].as_str().unwrap().len() >= 32);

    assert_eq!(
        post_form(&c, &format!("{admin}/consumers/admin/acls"), "group=ops")
            .await
            .status,
        201
    );
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers/admin/acls"), "group=ops")
            .await
            .status,
        409
    );

    // Top-level credential collections and the way back to the consumer.
    let keys = get(&c, &format!("{admin}/key-auths"), &[]).await.json();
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let owner = get(&c, &format!("{admin}/key-auths/{key}/consumer"), &[])
        .await
        .json();
    assert_eq!(owner["username"], "admin");

    // Auth plugins cannot be scoped to a consumer; others can.
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/consumers/admin/plugins"),
            "name=key-auth"
        )
        .await
        .status,
        400
    );
    let got = post_form(
        &c,
        &format!("{admin}/consumers/admin/plugins"),
        "name=rate-limiting&config.second=5",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());

    // Deleting the consumer takes its credentials and plugins with it.
    assert_eq!(
        send(&c, "DELETE", &format!("{admin}/consumers/admin"), None, &[])
            .await
            .status,
        204
    );
    assert_eq!(
        get(&c, &format!("{admin}/key-auths"), &[]).await.json()["data"],
        json!([])
    );
    assert_eq!(
        get(&c, &format!("{admin}/plugins"), &[]).await.json()["data"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_snis_ca_certificates_schemas_and_custom_id_lookup() {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let dir = support::gateway::temp_dir("admin-certs");
    let pki = support::tls::TestPki::new(&dir);
    let (pem_cert, pem_key) = (pki.cert_pem.as_str(), pki.key_pem.as_str());

    // A key that is not the certificate's is refused, naming the field.
    let (_, other_key) = pki.issue(&["other.test"]);
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/certificates"),
        &json!({"cert": pem_cert, "key": other_key}),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(
        got.json()["fields"]["key"]
            .as_str()
            .unwrap()
            .starts_with("does not match the certificate"),
        "{}",
        got.text()
    );

    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/certificates"),
        &json!({"cert": pem_cert, "key": pem_key}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let cert_id = got.json()["id"].as_str().unwrap().to_owned();
    let got = post_form(
        &c,
        &format!("{admin}/certificates/{cert_id}/snis"),
        "name=*.example.com",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["certificate"]["id"], cert_id.as_str());
    assert_eq!(
        get(&c, &format!("{admin}/snis/*.example.com"), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/certificates/{cert_id}/snis"),
            "name=a.*.com"
        )
        .await
        .status,
        400
    );
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/certificates"),
        &json!({"cert": "not pem", "key": pem_key}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert!(got.json()["fields"]["cert"].is_string(), "{}", got.text());
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/ca_certificates"),
        &json!({"cert": pki.ca_pem}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    // Deleting the certificate removes its SNIs.
    assert_eq!(
        send(
            &c,
            "DELETE",
            &format!("{admin}/certificates/{cert_id}"),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        get(&c, &format!("{admin}/snis"), &[]).await.json()["data"],
        json!([])
    );

    // GET /consumers?custom_id=
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/consumers"),
            "username=a&custom_id=ext-1"
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/consumers"),
            "username=b&custom_id=ext-2"
        )
        .await
        .status,
        201
    );
    let got = get(&c, &format!("{admin}/consumers?custom_id=ext-2"), &[])
        .await
        .json();
    assert_eq!(got["data"].as_array().unwrap().len(), 1);
    assert_eq!(got["data"][0]["username"], "b");

    // Schemas, and validation without storing.
    let s = get(&c, &format!("{admin}/schemas/plugins/rate-limiting"), &[])
        .await
        .json();
    assert!(s["fields"].to_string().contains("\"minute\""), "{s}");
    assert!(get(&c, &format!("{admin}/schemas/services"), &[])
        .await
        .json()["fields"]
        .is_array());
    assert_eq!(
        get(&c, &format!("{admin}/schemas/plugins/nope"), &[])
            .await
            .status,
        404
    );
    let got = post_form(
        &c,
        &format!("{admin}/schemas/plugins/validate"),
        "name=rate-limiting&config.minute=5",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = post_form(
        &c,
        &format!("{admin}/schemas/plugins/validate"),
        "name=rate-limiting&config.minute=x",
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(
        get(&c, &format!("{admin}/plugins"), &[]).await.json()["data"],
        json!([])
    );
}
