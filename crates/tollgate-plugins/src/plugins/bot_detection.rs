//! `bot-detection`: config schema and runtime. Refuses requests whose
//! `User-Agent` matches the `deny` list or Tollgate's built-in list of
//! crawler patterns, unless it matches the `allow` list first.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Field, PluginSchema, Ty};

/// `bot-detection` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotDetectionConfig {
    /// User-Agent regexes always let through (checked first).
    pub allow: Vec<String>,
    /// User-Agent regexes refused.
    pub deny: Vec<String>,
}

fn check_regex(s: &str) -> Result<(), String> {
    regex::Regex::new(s)
        .map(|_| ())
        .map_err(|e| format!("invalid regex: {e}"))
}

const REGEXES: Ty = Ty::Array(&Ty::Check(check_regex));

impl PluginSchema for BotDetectionConfig {
    const NAME: &'static str = "bot-detection";
    const PRIORITY: i32 = 2500;
    const FIELDS: &'static [Field] = &[field("allow", REGEXES), field("deny", REGEXES)];

    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        BotDetection::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }
}

/// Tollgate's own list of crawler and scraper User-Agents (written for
/// Tollgate, not taken from Kong): names ending in bot, spider or crawler,
/// and a few well-known fetchers that do not say so.
const BUILT_IN: &[&str] = &[
    r"(?i)[a-z0-9_.-]*(bot|spider|crawler)\b",
    r"(?i)\b(facebookexternalhit|slurp|scrapy|python-urllib|headlesschrome|phantomjs|httrack|nutch)\b",
];

/// The bot-detection plugin at run time.
#[derive(Debug)]
pub struct BotDetection {
    allow: regex::RegexSet,
    deny: regex::RegexSet,
    built_in: regex::RegexSet,
}

impl BotDetection {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: BotDetectionConfig = serde_json::from_value(config.clone()).ok()?;
        Some(BotDetection {
            allow: regex::RegexSet::new(&config.allow).ok()?,
            deny: regex::RegexSet::new(&config.deny).ok()?,
            built_in: regex::RegexSet::new(BUILT_IN).ok()?,
        })
    }
}

impl crate::runtime::Plugin for BotDetection {
    fn name(&self) -> &'static str {
        "bot-detection"
    }

    fn priority(&self) -> i32 {
        2500
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        let mut agents = ctx.headers.get_all(http::header::USER_AGENT).iter();
        let Some(agent) = agents.next() else {
            return Flow::Continue;
        };
        if agents.next().is_some() {
            return Flow::Respond(EarlyResponse::message(
                http::StatusCode::BAD_REQUEST,
                "Only one User-Agent header allowed",
            ));
        }
        let agent = String::from_utf8_lossy(agent.as_bytes());
        if self.allow.is_match(&agent) {
            return Flow::Continue;
        }
        if self.deny.is_match(&agent) || self.built_in.is_match(&agent) {
            return Flow::Respond(EarlyResponse::message(
                http::StatusCode::FORBIDDEN,
                "Forbidden",
            ));
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_list_catches_crawlers_and_not_browsers_or_curl() {
        let b = BotDetection::new(&serde_json::json!({})).unwrap();
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            "Baiduspider+(+http://www.baidu.com/search/spider.htm)",
            "facebookexternalhit/1.1",
            "Scrapy/2.11 (+https://scrapy.org)",
        ] {
            assert!(b.built_in.is_match(bot), "{bot}");
        }
        for human in [
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "curl/8.5.0",
            "okhttp/4.12.0",
        ] {
            assert!(!b.built_in.is_match(human), "{human}");
        }
    }
}
