//! Behaviour of the bundled plugins' config schemas through the public API.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tollgate_plugins::schema::{Field, Ty};
use tollgate_plugins::{priority, registry, validate_config, Problem, SchemaError};

fn problems(name: &str, config: Value) -> Vec<Problem> {
    match validate_config(name, &config) {
        Err(SchemaError::Invalid(p)) => p,
        other => panic!("expected Invalid for {name} {config}, got {other:?}"),
    }
}

fn p(path: &[&str], msg: &str) -> Problem {
    (
        path.iter().map(|s| s.to_string()).collect(),
        msg.to_string(),
    )
}

const WINDOWS_MSG: &str = "at least one of these fields must be non-empty: 'config.second', \
    'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'";

#[test]
fn rate_limiting_fills_kong_defaults_around_a_minute_limit() {
    let full = validate_config("rate-limiting", &json!({"minute": 100})).unwrap();
    assert_eq!(full["minute"], json!(100));
    assert_eq!(full["second"], Value::Null);
    assert_eq!(full["policy"], "local");
    assert_eq!(full["limit_by"], "consumer");
    assert_eq!(full["error_code"], json!(429));
    assert_eq!(full["error_message"], "API rate limit exceeded");
    assert_eq!(full["fault_tolerant"], true);
    assert_eq!(full["hide_client_headers"], false);
    assert_eq!(full["sync_rate"], json!(-1));
    assert_eq!(full["window_type"], "fixed");
    assert_eq!(full["redis"]["port"], json!(6379));
    assert_eq!(full["redis"]["timeout"], json!(2000));
    assert_eq!(full["redis"]["database"], json!(0));
    assert_eq!(full["redis"]["host"], Value::Null);
}

#[test]
fn partial_nested_record_keeps_its_other_defaults() {
    let full = validate_config(
        "rate-limiting",
        &json!({"minute": 5, "policy": "redis", "redis": {"host": "r.local"}}),
    )
    .unwrap();
    assert_eq!(full["redis"]["host"], "r.local");
    assert_eq!(full["redis"]["port"], json!(6379));
}

#[test]
fn unknown_field_is_reported_with_its_path() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": 1, "minutes": 2})),
        vec![p(&["minutes"], "unknown field")]
    );
    assert_eq!(
        problems(
            "rate-limiting",
            json!({"minute": 1, "redis": {"hots": "x"}})
        ),
        vec![p(&["redis", "hots"], "unknown field")]
    );
}

#[test]
fn string_where_a_number_is_expected_is_refused() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": "abc"})),
        vec![p(&["minute"], "expected a number")]
    );
    assert_eq!(
        problems(
            "request-size-limiting",
            json!({"allowed_payload_size": "x"})
        ),
        vec![p(&["allowed_payload_size"], "expected an integer")]
    );
    assert_eq!(
        problems(
            "request-size-limiting",
            json!({"allowed_payload_size": 1.5})
        ),
        vec![p(&["allowed_payload_size"], "expected an integer")]
    );
}

#[test]
fn integral_float_is_accepted_as_integer() {
    let full = validate_config(
        "request-size-limiting",
        &json!({"allowed_payload_size": 10.0}),
    )
    .unwrap();
    assert_eq!(full["allowed_payload_size"], json!(10));
}

#[test]
fn other_wrong_types_use_kong_wording() {
    assert_eq!(
        problems(
            "rate-limiting",
            json!({"minute": 1, "fault_tolerant": "yes", "redis": 5, "error_message": 3})
        ),
        vec![
            p(&["error_message"], "expected a string"),
            p(&["fault_tolerant"], "expected a boolean"),
            p(&["redis"], "expected a record"),
        ]
    );
    assert_eq!(
        problems("jwt", json!({"cookie_names": {"a": 1}})),
        vec![p(&["cookie_names"], "expected an array")]
    );
    assert_eq!(
        problems(
            "http-log",
            json!({"http_endpoint": "http://h", "headers": ["x"]})
        ),
        vec![p(&["headers"], "expected a map")]
    );
    assert_eq!(
        problems("rate-limiting", Value::String("minute=1".into())),
        vec![p(&[], "expected a record")]
    );
}

#[test]
fn negative_and_out_of_range_values_are_refused() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": -1})),
        vec![p(&["minute"], "value must be greater than 0")]
    );
    assert_eq!(
        problems(
            "rate-limiting",
            json!({"minute": 1, "redis": {"port": 70000}})
        ),
        vec![p(&["redis", "port"], "value should be between 0 and 65535")]
    );
    assert_eq!(
        problems("request-termination", json!({"status_code": 600})),
        vec![p(&["status_code"], "value should be between 100 and 599")]
    );
    assert_eq!(
        problems("jwt", json!({"maximum_expiration": 31536001})),
        vec![p(
            &["maximum_expiration"],
            "value should be between 0 and 31536000"
        )]
    );
}

#[test]
fn enum_value_outside_the_list_is_refused() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": 1, "policy": "memcached"})),
        vec![p(&["policy"], "expected one of: local, cluster, redis")]
    );
    assert_eq!(
        problems("jwt", json!({"claims_to_verify": ["exp", "iat"]})),
        vec![p(&["claims_to_verify", "1"], "expected one of: exp, nbf")]
    );
}

#[test]
fn rate_limiting_without_any_window_gives_the_entity_message() {
    assert_eq!(
        problems("rate-limiting", json!({})),
        vec![p(&[], WINDOWS_MSG)]
    );
    assert_eq!(
        problems("rate-limiting", json!({"minute": null})),
        vec![p(&[], WINDOWS_MSG)]
    );
}

#[test]
fn rate_limiting_refuses_a_longer_window_with_a_lower_limit() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": 100, "hour": 50})),
        vec![p(
            &[],
            "The limit for hour(50.0) cannot be lower than the limit for minute(100.0)"
        )]
    );
    assert!(validate_config("rate-limiting", &json!({"minute": 100, "hour": 100})).is_ok());
}

#[test]
fn rate_limiting_conditional_fields_are_required() {
    assert_eq!(
        problems("rate-limiting", json!({"minute": 1, "limit_by": "header"})),
        vec![p(&["header_name"], "required field missing")]
    );
    assert_eq!(
        problems("rate-limiting", json!({"minute": 1, "policy": "redis"})),
        vec![p(&["redis", "host"], "required field missing")]
    );
}

#[test]
fn jwt_empty_config_is_valid_with_defaults() {
    let full = validate_config("jwt", &json!({})).unwrap();
    assert_eq!(full["uri_param_names"], json!(["jwt"]));
    assert_eq!(full["cookie_names"], json!([]));
    assert_eq!(full["header_names"], json!(["authorization"]));
    assert_eq!(full["key_claim_name"], "iss");
    assert_eq!(full["secret_is_base64"], false);
    assert_eq!(full["run_on_preflight"], true);
    assert_eq!(full["maximum_expiration"], json!(0));
    assert_eq!(full["claims_to_verify"], Value::Null);
    assert_eq!(full["anonymous"], Value::Null);
}

#[test]
fn jwt_maximum_expiration_needs_exp_claim() {
    assert_eq!(
        problems("jwt", json!({"maximum_expiration": 60})),
        vec![p(&["claims_to_verify"], "expected to contain: exp")]
    );
    assert!(validate_config(
        "jwt",
        &json!({"maximum_expiration": 60, "claims_to_verify": ["exp"]})
    )
    .is_ok());
}

#[test]
fn key_auth_accepts_a_single_key_name_string_as_array() {
    let full = validate_config("key-auth", &json!({"key_names": "apikey"})).unwrap();
    assert_eq!(full["key_names"], json!(["apikey"]));
    assert_eq!(full["key_in_header"], true);
    assert_eq!(full["key_in_query"], true);
    assert_eq!(full["key_in_body"], false);
    assert_eq!(
        problems("key-auth", json!({"key_names": ["bad name"]})),
        vec![p(
            &["key_names", "0"],
            "bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        )]
    );
}

#[test]
fn acl_needs_exactly_one_of_allow_and_deny() {
    assert_eq!(
        problems("acl", json!({})),
        vec![p(
            &[],
            "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"
        )]
    );
    assert_eq!(
        problems("acl", json!({"allow": ["a"], "deny": ["b"]})),
        vec![p(
            &[],
            "only one of these fields must be non-empty: 'config.allow', 'config.deny'"
        )]
    );
    let full = validate_config("acl", &json!({"allow": "admins"})).unwrap();
    assert_eq!(full["allow"], json!(["admins"]));
    assert_eq!(full["deny"], Value::Null);
}

#[test]
fn ip_restriction_validates_ips_and_cidrs() {
    assert_eq!(
        problems(
            "ip-restriction",
            json!({"allow": ["10.0.0.0/8", "300.1.1.1"]})
        ),
        vec![p(&["allow", "1"], "invalid ip or cidr range: '300.1.1.1'")]
    );
}

#[test]
fn required_field_missing_is_reported() {
    assert_eq!(
        problems("file-log", json!({})),
        vec![p(&["path"], "required field missing")]
    );
    assert_eq!(
        problems("tcp-log", json!({"host": "h"})),
        vec![p(&["port"], "required field missing")]
    );
}

#[test]
fn unknown_plugin_name_is_refused() {
    assert_eq!(
        validate_config("no-such-plugin", &json!({})),
        Err(SchemaError::UnknownPlugin)
    );
    assert_eq!(priority("no-such-plugin"), None);
}

#[test]
fn priorities_follow_kong() {
    assert_eq!(priority("correlation-id"), Some(100001));
    assert_eq!(priority("cors"), Some(2000));
    assert_eq!(priority("jwt"), Some(1450));
    assert_eq!(priority("key-auth"), Some(1250));
    assert_eq!(priority("acl"), Some(950));
    assert_eq!(priority("rate-limiting"), Some(910));
    assert_eq!(priority("request-termination"), Some(2));
    let prios: Vec<i32> = registry().iter().map(|p| p.priority).collect();
    let mut sorted = prios.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(prios, sorted, "registry is listed by descending priority");
}

/// The smallest valid config of every registered plugin.
const MINIMAL: &[(&str, &str)] = &[
    ("correlation-id", "{}"),
    ("bot-detection", "{}"),
    ("cors", "{}"),
    (
        "acme",
        r#"{"account_email": "ops@example.com", "tos_accepted": true}"#,
    ),
    (
        "mtls-auth",
        r#"{"ca_certificates": ["0f8fad5b-d9cb-469f-a165-70867728950e"]}"#,
    ),
    ("jwt", "{}"),
    ("oauth2", "{}"),
    ("key-auth", "{}"),
    ("basic-auth", "{}"),
    ("hmac-auth", "{}"),
    ("ip-restriction", r#"{"allow": ["127.0.0.1"]}"#),
    ("request-size-limiting", "{}"),
    ("acl", r#"{"allow": ["admins"]}"#),
    ("rate-limiting", r#"{"minute": 100}"#),
    ("request-transformer", "{}"),
    ("response-transformer", "{}"),
    ("compression", "{}"),
    ("limit-req", "{}"),
    ("static-files", r#"{"root": "/srv/www"}"#),
    ("proxy-cache", "{}"),
    ("prometheus", "{}"),
    (
        "http-log",
        r#"{"http_endpoint": "http://logs.local:9000/x"}"#,
    ),
    ("file-log", r#"{"path": "/tmp/tollgate.log"}"#),
    ("udp-log", r#"{"host": "logs.local", "port": 514}"#),
    ("tcp-log", r#"{"host": "logs.local", "port": 514}"#),
    ("request-termination", "{}"),
];

#[test]
fn every_registered_plugin_accepts_its_minimal_config_and_revalidates_its_output() {
    for info in registry() {
        let (_, minimal) = MINIMAL
            .iter()
            .find(|(name, _)| *name == info.name)
            .unwrap_or_else(|| panic!("{} has no minimal config in the table", info.name));
        let config: Value = serde_json::from_str(minimal).unwrap();
        let full =
            validate_config(info.name, &config).unwrap_or_else(|e| panic!("{}: {e}", info.name));
        assert!(full.is_object(), "{}", info.name);
        let again = validate_config(info.name, &full)
            .unwrap_or_else(|e| panic!("{} refuses its own output: {e}", info.name));
        assert_eq!(again, full, "{}", info.name);
        assert!(!info.version.is_empty());
    }
    assert_eq!(registry().len(), MINIMAL.len());
}

fn assert_table_matches(plugin: &str, path: &str, fields: &[Field], defaults: &Value) {
    let obj = defaults
        .as_object()
        .unwrap_or_else(|| panic!("{plugin}{path}: defaults are not an object"));
    let mut table: Vec<&str> = fields.iter().map(|f| f.name).collect();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    table.sort_unstable();
    keys.sort_unstable();
    assert_eq!(table, keys, "{plugin}{path}: field table and struct differ");
    for f in fields {
        if let Ty::Record(inner) = f.ty {
            assert_table_matches(plugin, &format!("{path}.{}", f.name), inner, &obj[f.name]);
        }
    }
}

#[test]
fn every_field_table_matches_its_config_struct() {
    for info in registry() {
        assert_table_matches(info.name, "", info.fields(), &info.defaults());
    }
}

#[test]
fn bot_detection_refuses_an_invalid_regex_naming_the_entry() {
    let err = validate_config(
        "bot-detection",
        &serde_json::json!({"deny": ["ok", "(unclosed"]}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("deny") && err.contains("invalid regex"),
        "{err}"
    );
}
