//! Consumers, credentials, plugins, certificates, SNIs and CA certificates.
#![allow(clippy::unwrap_used)]

mod support;
use serde_json::{json, Value};
use support::{err, has_line, ok};
use tollgate_model::declarative::{entity_id, parse_str_with};
use tollgate_model::{CredentialKind, PluginConfigError, PluginSchemas};

const CERT: &str = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n";

/// Knows `rate-limiting` (integer `minute`, default `policy: local`) and
/// `cors`; everything else is unknown.
struct TestSchemas;

impl PluginSchemas for TestSchemas {
    fn validate(&self, name: &str, config: &Value) -> Result<Value, PluginConfigError> {
        match name {
            "cors" => Ok(config.clone()),
            "rate-limiting" => {
                if let Some(m) = config.get("minute") {
                    if !m.is_u64() {
                        return Err(PluginConfigError::Invalid(vec![(
                            vec!["minute".into()],
                            "expected an integer".into(),
                        )]));
                    }
                }
                let mut c = config.clone();
                c.as_object_mut()
                    .unwrap()
                    .entry("policy")
                    .or_insert(json!("local"));
                Ok(c)
            }
            _ => Err(PluginConfigError::UnknownPlugin),
        }
    }
}

fn err_with(yaml: &str) -> String {
    match parse_str_with(yaml, "kong.yml", Some(&TestSchemas)) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn consumer_without_username_or_custom_id_is_refused() {
    let e = err("_format_version: \"3.0\"\nconsumers:\n  - tags: [a]\n");
    has_line(
        &e,
        "kong.yml: consumers[0]: at least one of these fields must be non-empty: 'custom_id', 'username'",
    );
    let c = ok("_format_version: \"3.0\"\nconsumers:\n  - custom_id: ext-1\n");
    assert_eq!(c.consumers[0].custom_id.as_deref(), Some("ext-1"));
}

#[test]
fn consumer_id_is_derived_from_the_username() {
    let c = ok("_format_version: \"3.0\"\nconsumers:\n  - username: bob\n");
    assert_eq!(c.consumers[0].id, entity_id("consumers", "bob"));
}

#[test]
fn duplicate_username_and_custom_id_are_refused() {
    let e = err(
        "_format_version: \"3.0\"\nconsumers:\n  - {username: bob, custom_id: x}\n  - {username: bob}\n  - {custom_id: x}\n",
    );
    has_line(
        &e,
        "kong.yml: consumers[1] (username \"bob\").username: duplicate username \"bob\" (already used by consumers[0] (username \"bob\"))",
    );
    has_line(
        &e,
        "kong.yml: consumers[2] (custom_id \"x\").custom_id: duplicate custom_id \"x\"",
    );
}

#[test]
fn key_auth_credentials_nest_under_consumers_or_name_their_consumer() {
    let c = ok(r#"
_format_version: "3.0"
consumers:
  - username: bob
    keyauth_credentials:
      - key: k1
  - username: alice
keyauth_credentials:
  - {consumer: alice, key: k2, ttl: 60}
  - {consumer: {username: bob}, key: k3}
"#);
    assert_eq!(c.credentials.len(), 3);
    let bob = c.consumers[0].id;
    let alice = c.consumers[1].id;
    assert_eq!(c.credentials[0].consumer, bob);
    assert_eq!(c.credentials[0].kind, CredentialKind::KeyAuth);
    assert_eq!(c.credentials[0].fields["key"], json!("k1"));
    assert_eq!(c.credentials[1].consumer, alice);
    assert_eq!(c.credentials[1].fields["ttl"], json!(60));
    assert_eq!(c.credentials[2].consumer, bob);
    assert_eq!(
        CredentialKind::KeyAuth.declarative_key(),
        "keyauth_credentials"
    );
}

#[test]
fn top_level_credential_needs_a_known_consumer() {
    let e = err("_format_version: \"3.0\"\nkeyauth_credentials:\n  - {key: a}\n  - {key: b, consumer: nobody}\n");
    has_line(
        &e,
        "kong.yml: keyauth_credentials[0].consumer: required field missing",
    );
    has_line(
        &e,
        "kong.yml: keyauth_credentials[1].consumer: no consumer with username or id \"nobody\"",
    );
}

#[test]
fn duplicate_key_auth_key_is_refused() {
    let e = err(r#"
_format_version: "3.0"
consumers:
  - username: bob
    keyauth_credentials: [{key: same}]
  - username: alice
    keyauth_credentials: [{key: same}]
"#);
    has_line(
        &e,
        "kong.yml: consumers[1] (username \"alice\").keyauth_credentials[0].key: duplicate key-auth key \"same\" (already used by consumers[0] (username \"bob\").keyauth_credentials[0])",
    );
}

#[test]
fn credential_fields_are_checked_and_unknown_ones_refused() {
    let e = err(r#"
_format_version: "3.0"
consumers:
  - username: bob
    basicauth_credentials: [{username: u}]
    keyauth_credentials: [{key: k, ttl: -1, secret: s}]
"#);
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").basicauth_credentials[0].password: required field missing",
    );
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").keyauth_credentials[0]: unknown field 'secret'",
    );
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").keyauth_credentials[0].ttl: value should be between 0 and",
    );
}

#[test]
fn jwt_rs256_without_rsa_public_key_is_refused() {
    let e = err(r#"
_format_version: "3.0"
consumers:
  - username: bob
    jwt_secrets: [{key: iss, algorithm: RS256}]
"#);
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").jwt_secrets[0].rsa_public_key: required field missing when 'algorithm' is 'RS256'",
    );
}

#[test]
fn credential_defaults_are_filled_in() {
    let c = ok(r#"
_format_version: "3.0"
consumers:
  - username: bob
    jwt_secrets: [{key: iss, secret: s}]
    oauth2_credentials: [{name: app, client_id: id, client_secret: sec, redirect_uris: ["https://a.com/cb"]}]
"#);
    assert_eq!(c.credentials[0].fields["algorithm"], json!("HS256"));
    assert_eq!(c.credentials[1].fields["hash_secret"], json!(false));
    assert_eq!(
        c.credentials[1].fields["client_type"],
        json!("confidential")
    );
}

#[test]
fn duplicate_acl_group_for_one_consumer_is_refused() {
    let e = err(r#"
_format_version: "3.0"
consumers:
  - username: bob
    acls: [{group: admins}, {group: admins}]
"#);
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").acls[1].group: duplicate acl group \"admins\" for this consumer",
    );
    // The same group on two consumers is fine.
    ok(r#"
_format_version: "3.0"
consumers:
  - {username: bob, acls: [{group: admins}]}
  - {username: alice, acls: [{group: admins}]}
"#);
}

#[test]
fn nested_plugins_get_the_scope_of_their_parent() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: s
    host: s.com
    plugins: [{name: cors}]
    routes:
      - name: r
        paths: [/]
        plugins: [{name: cors}]
consumers:
  - username: bob
    plugins: [{name: rate-limiting, config: {minute: 5}}]
"#);
    let (s, r, bob) = (c.services[0].id, c.routes[0].id, c.consumers[0].id);
    let scope = |p: &tollgate_model::Plugin| (p.service, p.route, p.consumer);
    let scopes: Vec<_> = c.plugins.iter().map(scope).collect();
    assert!(scopes.contains(&(Some(s), None, None)), "{scopes:?}");
    assert!(scopes.contains(&(None, Some(r), None)), "{scopes:?}");
    assert!(scopes.contains(&(None, None, Some(bob))), "{scopes:?}");
    let p = &c.plugins[0];
    assert_eq!(p.config, json!({}));
    assert_eq!(p.protocols, ["grpc", "grpcs", "http", "https"]);
    assert!(p.enabled);
}

#[test]
fn nested_plugin_must_not_name_another_parent() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: s
    host: s.com
    routes: [{name: r, paths: [/]}]
    plugins: [{name: cors, route: r}]
"#);
    has_line(
        &e,
        "kong.yml: services[0] (name \"s\").plugins[0] (name \"cors\").route: must not be set on a plugin nested under a service",
    );
}

#[test]
fn top_level_plugin_can_name_a_service_and_a_route() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: s
    host: s.com
    routes: [{name: r, paths: [/]}]
consumers: [{username: bob}]
plugins:
  - {name: cors, service: s, route: {name: r}}
  - {name: cors, service: s, consumer: bob}
  - {name: cors}
"#);
    assert_eq!(c.plugins.len(), 3);
    assert_eq!(c.plugins[0].service, Some(c.services[0].id));
    assert_eq!(c.plugins[0].route, Some(c.routes[0].id));
    assert_eq!(c.plugins[1].consumer, Some(c.consumers[0].id));
    assert_eq!(c.plugins[2].service, None);
    let e = err("_format_version: \"3.0\"\nplugins:\n  - {name: cors, service: nope}\n");
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"cors\").service: no service with name or id \"nope\"",
    );
}

#[test]
fn duplicate_plugin_with_the_same_name_and_scope_is_refused() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: s
    host: s.com
    plugins: [{name: cors}]
plugins:
  - {name: cors, service: s}
  - {name: cors, instance_name: a}
  - {name: rate-limiting, instance_name: a}
"#);
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"cors\"): duplicate plugin 'cors' for the same service",
    );
    has_line(
        &e,
        "kong.yml: plugins[2] (name \"rate-limiting\").instance_name: duplicate instance_name \"a\"",
    );
}

#[test]
fn unknown_plugin_is_refused_with_kongs_message_when_validated() {
    let e = err_with("_format_version: \"3.0\"\nplugins:\n  - name: nope\n");
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"nope\").name: plugin 'nope' not enabled; add it to the 'plugins' configuration property",
    );
    // Without a validator any name and object config is accepted.
    ok("_format_version: \"3.0\"\nplugins:\n  - {name: nope, config: {x: 1}}\n");
}

#[test]
fn plugin_config_errors_land_under_config() {
    let e = err_with(
        "_format_version: \"3.0\"\nplugins:\n  - name: rate-limiting\n    config: {minute: lots}\n",
    );
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"rate-limiting\").config.minute: expected an integer",
    );
    let issue = &tollgate_model::declarative::parse_str_with(
        "_format_version: \"3.0\"\nplugins:\n  - name: rate-limiting\n    config: {minute: lots}\n",
        "kong.yml",
        Some(&TestSchemas),
    )
    .unwrap_err()
    .issues()[0]
        .clone();
    let plain: Vec<String> = issue
        .path
        .segments()
        .iter()
        .map(|s| match s {
            tollgate_model::PathSegment::Field(f) => f.clone(),
            tollgate_model::PathSegment::Index { index, .. } => index.to_string(),
        })
        .collect();
    assert_eq!(plain, ["plugins", "0", "config", "minute"]);
}

#[test]
fn validator_fills_plugin_config_defaults() {
    let c = parse_str_with(
        "_format_version: \"3.0\"\nplugins:\n  - {name: rate-limiting, config: {minute: 5}}\n",
        "kong.yml",
        Some(&TestSchemas),
    )
    .unwrap();
    assert_eq!(c.plugins[0].config, json!({"minute": 5, "policy": "local"}));
}

#[test]
fn auth_plugin_on_a_consumer_is_refused() {
    let e = err(r#"
_format_version: "3.0"
consumers:
  - username: bob
    plugins: [{name: key-auth}]
plugins:
  - {name: basic-auth, consumer: bob}
"#);
    has_line(
        &e,
        "kong.yml: consumers[0] (username \"bob\").plugins[0] (name \"key-auth\"): plugin 'key-auth' cannot be applied to a consumer",
    );
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"basic-auth\").consumer: plugin 'basic-auth' cannot be applied to a consumer",
    );
}

#[test]
fn plugin_ordering_is_shape_checked() {
    ok("_format_version: \"3.0\"\nplugins:\n  - {name: cors, ordering: {before: {access: [key-auth]}}}\n");
    let e = err(
        "_format_version: \"3.0\"\nplugins:\n  - {name: cors, ordering: {first: {access: [a]}}}\n",
    );
    has_line(
        &e,
        "kong.yml: plugins[0] (name \"cors\").ordering: unknown field 'first'",
    );
}

#[test]
fn certificate_with_snis_creates_sni_entities() {
    let c = ok(&format!(
        r#"
_format_version: "3.0"
certificates:
  - cert: "{CERT}"
    key: "{KEY}"
    snis: [a.example.com, {{name: "*.b.example.com"}}]
"#
    ));
    assert_eq!(c.certificates.len(), 1);
    let names: Vec<&str> = c.snis.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a.example.com", "*.b.example.com"]);
    assert!(c.snis.iter().all(|s| s.certificate == c.certificates[0].id));
    assert_eq!(c.snis[0].id, entity_id("snis", "a.example.com"));
}

#[test]
fn top_level_sni_names_its_certificate_by_id() {
    let id = "11111111-1111-4111-8111-111111111111";
    let c = ok(&format!(
        "_format_version: \"3.0\"\ncertificates:\n  - {{id: \"{id}\", cert: \"{CERT}\", key: \"{KEY}\"}}\nsnis:\n  - {{name: c.example.com, certificate: {{id: \"{id}\"}}}}\n"
    ));
    assert_eq!(c.snis[0].certificate.to_string(), id);
}

#[test]
fn sni_wildcard_in_the_middle_is_refused() {
    let e = err(&format!(
        "_format_version: \"3.0\"\ncertificates:\n  - cert: \"{CERT}\"\n    key: \"{KEY}\"\n    snis: [a.*.com]\n"
    ));
    has_line(
        &e,
        "kong.yml: certificates[0].snis[0]: invalid wildcard sni \"a.*.com\"",
    );
}

#[test]
fn certificate_needs_pem_cert_and_key_and_both_alternates() {
    let e = err(&format!(
        "_format_version: \"3.0\"\ncertificates:\n  - {{cert: nope, cert_alt: \"{CERT}\"}}\nca_certificates:\n  - {{cert: \"{CERT}\", cert_digest: d}}\n  - {{cert: \"{CERT}\", cert_digest: d}}\n"
    ));
    has_line(
        &e,
        "kong.yml: certificates[0].cert: expected a PEM certificate",
    );
    has_line(&e, "kong.yml: certificates[0].key: required field missing");
    has_line(
        &e,
        "kong.yml: certificates[0].key_alt: required field missing when 'cert_alt' is set",
    );
    has_line(
        &e,
        "kong.yml: ca_certificates[1].cert_digest: duplicate cert_digest \"d\"",
    );
}
