//! Entity ids as Kong derives them in DB-less mode.
//!
//! Kong gives an entity without an `id` the UUIDv5 of its endpoint key in a
//! per-entity namespace, itself the UUIDv5 of the entity name (`services`,
//! `routes`, ...) in the namespace `fd02801f-0957-4a15-a55a-c8d9606f30b5`.
//! Tollgate reproduces those ids exactly for named services, routes and
//! upstreams, and for targets (whose key is
//! `targets:<default workspace id>:<upstream>:<target>`).
//!
//! Kong gives entities without an endpoint key (an unnamed service or route)
//! a random UUIDv4. Tollgate instead derives a UUIDv5 from the entity's
//! content and parent, so reloading an unchanged file keeps every id (and
//! the state keyed by it) stable.

use serde_json::Value;
use uuid::Uuid;

/// Kong's namespace for generated entity ids.
pub const KONG_NAMESPACE: Uuid = Uuid::from_u128(0xfd02801f_0957_4a15_a55a_c8d9606f30b5);

/// The id of Kong's default workspace in DB-less mode.
const DEFAULT_WORKSPACE: &str = "0dc6f45b-8f8d-40d2-a504-473544ee190b";

/// The id Kong gives an entity of kind `entity` (plural schema name, e.g.
/// `"services"`) whose endpoint key is `key` (e.g. the service name).
pub fn entity_id(entity: &str, key: &str) -> Uuid {
    let namespace = Uuid::new_v5(&KONG_NAMESPACE, entity.as_bytes());
    Uuid::new_v5(&namespace, key.as_bytes())
}

/// The id Kong gives a target: `upstream` is the parent upstream's id when
/// the target is nested, or the reference as written in a top-level target.
pub(crate) fn target_id(upstream: &str, target: &str) -> Uuid {
    entity_id(
        "targets",
        &format!("targets:{DEFAULT_WORKSPACE}:{upstream}:{target}"),
    )
}

/// The content of an unnamed entity that its id is derived from: the JSON
/// text without nested children and comments.
pub(crate) fn content_of(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut m = map.clone();
            for k in ["routes", "plugins", "targets", "_comment", "_ignore"] {
                m.remove(k);
            }
            Value::Object(m).to_string()
        }
        other => other.to_string(),
    }
}

/// A stable id for an entity without an endpoint key: derived from its
/// parent, its [`content_of`], and how many identical siblings came before.
pub(crate) fn unnamed_id(entity: &str, parent: &str, content: &str, occurrence: usize) -> Uuid {
    entity_id(
        entity,
        &format!("tollgate-unnamed:{parent}:{occurrence}:{content}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ids observed in real Kong logs (DB-less, default workspace).
    #[test]
    fn named_ids_match_kong() {
        assert_eq!(
            entity_id("services", "openapi").to_string(),
            "51a54110-f000-5535-98dd-b30846dc75b0"
        );
        assert_eq!(
            entity_id("routes", "openapi").to_string(),
            "4208d053-d722-5d24-9535-fe1fefa26161"
        );
        assert_eq!(
            entity_id("services", "default.echo.1027").to_string(),
            "4a3125fc-7d51-5575-b0f3-978d9a44a49b"
        );
        assert_eq!(
            entity_id("routes", "default.echo.echo.echo.cuiliangblog.cn.1027").to_string(),
            "f7791fe8-8a31-557d-ac59-eaa96127eab0"
        );
    }

    #[test]
    fn unnamed_ids_depend_on_content_parent_and_occurrence() {
        let a = content_of(&serde_json::json!({"paths": ["/a"]}));
        let b = content_of(&serde_json::json!({"paths": ["/b"]}));
        assert_eq!(
            unnamed_id("routes", "s", &a, 0),
            unnamed_id("routes", "s", &a, 0)
        );
        assert_ne!(
            unnamed_id("routes", "s", &a, 0),
            unnamed_id("routes", "s", &b, 0)
        );
        assert_ne!(
            unnamed_id("routes", "s", &a, 0),
            unnamed_id("routes", "t", &a, 0)
        );
        assert_ne!(
            unnamed_id("routes", "s", &a, 0),
            unnamed_id("routes", "s", &a, 1)
        );
    }
}

#[cfg(test)]
mod content_tests {
    use super::*;

    #[test]
    fn content_ignores_nested_children_and_comments() {
        let a = serde_json::json!({"host": "h", "routes": [{"paths": ["/a"]}], "_comment": "x"});
        let b = serde_json::json!({"host": "h"});
        assert_eq!(content_of(&a), content_of(&b));
    }
}
