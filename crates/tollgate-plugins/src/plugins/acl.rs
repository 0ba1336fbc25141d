//! `acl`: config schema.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Field, PluginSchema, Ty, STRINGS};
use crate::Problem;

/// `acl` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AclConfig {
    /// Groups allowed (exclusive with `deny`).
    pub allow: Option<Vec<String>>,
    /// Groups denied (exclusive with `allow`).
    pub deny: Option<Vec<String>>,
    /// Do not send `X-Consumer-Groups` upstream (false).
    pub hide_groups_header: bool,
    /// Also match consumer groups (false).
    pub include_consumer_groups: bool,
    /// Use the groups of the authenticated credential (false).
    pub always_use_authenticated_groups: bool,
}

fn non_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

impl PluginSchema for AclConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        Acl::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "acl";
    const PRIORITY: i32 = 950;
    const FIELDS: &'static [Field] = &[
        field("allow", STRINGS),
        field("deny", STRINGS),
        field("hide_groups_header", Ty::Bool),
        field("include_consumer_groups", Ty::Bool),
        field("always_use_authenticated_groups", Ty::Bool),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        match (non_empty(&self.allow), non_empty(&self.deny)) {
            (false, false) => problems.push(problem(
                &[],
                "at least one of these fields must be non-empty: 'config.allow', 'config.deny'",
            )),
            (true, true) => problems.push(problem(
                &[],
                "only one of these fields must be non-empty: 'config.allow', 'config.deny'",
            )),
            _ => {}
        }
        result(problems)
    }
}

/// The acl plugin at run time.
#[derive(Debug)]
pub struct Acl {
    config: AclConfig,
}

impl Acl {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        Some(Acl {
            config: serde_json::from_value(config.clone()).ok()?,
        })
    }
}

impl crate::runtime::Plugin for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn priority(&self) -> i32 {
        950
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        let Some(identity) = ctx.identity.as_ref() else {
            return Flow::Respond(EarlyResponse::message(
                http::StatusCode::UNAUTHORIZED,
                "Unauthorized",
            ));
        };
        let groups = &identity.consumer.groups;
        let member = |list: &Option<Vec<String>>| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|g| groups.iter().any(|c| c == g)))
        };
        let allowed = match (&self.config.allow, &self.config.deny) {
            (Some(_), _) => member(&self.config.allow),
            (None, Some(_)) => !member(&self.config.deny),
            (None, None) => true,
        };
        if !allowed {
            return Flow::Respond(EarlyResponse::message(
                http::StatusCode::FORBIDDEN,
                "You cannot consume this service",
            ));
        }
        const GROUPS: http::HeaderName = http::HeaderName::from_static("x-consumer-groups");
        if self.config.hide_groups_header {
            ctx.headers.remove(GROUPS);
        } else if let Ok(v) = http::HeaderValue::from_str(&groups.join(", ")) {
            ctx.headers.insert(GROUPS, v);
        }
        Flow::Continue
    }
}
