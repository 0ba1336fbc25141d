//! Typed access to the fields of a JSON object, collecting every problem as
//! an [`Issue`] with the exact path instead of stopping at the first one.

use crate::error::{FieldPath, Issue};
use serde_json::{Map, Value};

/// Keys that Kong allows in any record and ignores.
pub(crate) const IGNORED_KEYS: [&str; 2] = ["_comment", "_ignore"];

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) issues: Vec<Issue>,
}

impl Ctx {
    /// Records a problem at `path`.
    pub(crate) fn err(&mut self, path: FieldPath, message: impl Into<String>) {
        self.issues.push(Issue::new(path, message));
    }
}

/// A short description of a value for messages: `string "abc"`, `integer 5`,
/// `an array`, ...
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `s` in double quotes, escaped, and cut when very long.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{:?}...", cut)
    } else {
        format!("{s:?}")
    }
}

/// Reads an integer: JSON integers, and floats with no fractional part (YAML
/// `07` or JSON `80.0`).
pub(crate) fn as_integer(v: &Value) -> Option<Result<i64, ()>> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(Ok(i));
    }
    if n.as_u64().is_some() {
        return Some(Err(()));
    }
    match n.as_f64() {
        // Bounds keep the cast exact; 2^63 itself is out of range.
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => Some(Ok(f as i64)),
        Some(f) if f.is_finite() && f.fract() == 0.0 => Some(Err(())),
        _ => None,
    }
}

/// An object being read, with its path.
pub(crate) struct Record<'v> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) path: FieldPath,
}

impl<'v> Record<'v> {
    /// Views `value` as an object, or records "expected an object".
    pub(crate) fn new(ctx: &mut Ctx, value: &'v Value, path: FieldPath) -> Option<Record<'v>> {
        match value {
            Value::Object(map) => Some(Record { map, path }),
            other => {
                ctx.err(path, format!("expected an object, got {}", describe(other)));
                None
            }
        }
    }

    /// Reports every key that is neither in `allowed` nor `_comment`/`_ignore`.
    pub(crate) fn check_fields(&self, ctx: &mut Ctx, allowed: &[&str]) {
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) || IGNORED_KEYS.contains(&key.as_str()) {
                continue;
            }
            let mut msg = format!("unknown field '{key}'");
            if let Some(hint) = closest(key, allowed) {
                msg.push_str(&format!(" (did you mean '{hint}'?)"));
            }
            ctx.err(self.path.clone(), msg);
        }
    }

    /// The path of one of this object's fields.
    pub(crate) fn at(&self, key: &str) -> FieldPath {
        self.path.field(key)
    }

    /// The value of `key`; `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// True when `key` is present and not null.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A string field.
    pub(crate) fn string(&self, ctx: &mut Ctx, key: &str) -> Option<&'v str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            other => {
                ctx.err(
                    self.at(key),
                    format!("expected a string, got {}", describe(other)),
                );
                None
            }
        }
    }

    /// A boolean field, `default` when absent or wrong.
    pub(crate) fn boolean(&self, ctx: &mut Ctx, key: &str, default: bool) -> bool {
        self.opt_boolean(ctx, key).unwrap_or(default)
    }

    /// A boolean field that may be absent.
    pub(crate) fn opt_boolean(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                ctx.err(
                    self.at(key),
                    format!("expected a boolean, got {}", describe(other)),
                );
                None
            }
        }
    }

    /// An integer field within `min..=max`.
    pub(crate) fn integer(&self, ctx: &mut Ctx, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(key)?;
        self.within(ctx, key, v, as_integer(v), (min, max), "an integer")
    }

    /// A number field within `min..=max`.
    pub(crate) fn float(&self, ctx: &mut Ctx, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = self.get(key)?;
        self.within(ctx, key, v, v.as_f64().map(Ok), (min, max), "a number")
    }

    /// `parsed` (the value of `key` read as `what`; `Err` when it does not
    /// even fit the type) when it lies within `bounds`; otherwise records
    /// why not.
    fn within<T: PartialOrd + std::fmt::Display>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        v: &Value,
        parsed: Option<Result<T, ()>>,
        (min, max): (T, T),
        what: &str,
    ) -> Option<T> {
        match parsed {
            Some(Ok(x)) if x >= min && x <= max => Some(x),
            Some(_) => {
                ctx.err(
                    self.at(key),
                    format!(
                        "value should be between {min} and {max}, got {}",
                        describe(v)
                    ),
                );
                None
            }
            None => {
                ctx.err(
                    self.at(key),
                    format!("expected {what}, got {}", describe(v)),
                );
                None
            }
        }
    }

    /// A number field (timestamps); only the type is checked.
    pub(crate) fn number(&self, ctx: &mut Ctx, key: &str) {
        if let Some(v) = self.get(key) {
            if !v.is_number() {
                ctx.err(
                    self.at(key),
                    format!("expected a number, got {}", describe(v)),
                );
            }
        }
    }

    /// An array field.
    pub(crate) fn array(&self, ctx: &mut Ctx, key: &str) -> Option<&'v [Value]> {
        match self.get(key)? {
            Value::Array(a) => Some(a),
            other => {
                ctx.err(
                    self.at(key),
                    format!("expected an array, got {}", describe(other)),
                );
                None
            }
        }
    }

    /// An array of strings; each element comes with its path. Elements of
    /// another type are reported and left out.
    pub(crate) fn strings(&self, ctx: &mut Ctx, key: &str) -> Option<Vec<(FieldPath, &'v str)>> {
        let items = self.array(ctx, key)?;
        let base = self.at(key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push((base.index(i), s.as_str())),
                other => ctx.err(
                    base.index(i),
                    format!("expected a string, got {}", describe(other)),
                ),
            }
        }
        Some(out)
    }

    /// A field Tollgate does not implement yet: accepted only when absent,
    /// null or an empty array/object.
    pub(crate) fn unsupported(&self, ctx: &mut Ctx, key: &str) {
        let empty = match self.get(key) {
            None => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(_) => false,
        };
        if !empty {
            ctx.err(self.at(key), format!("'{key}' is not supported yet"));
        }
    }
}

/// The allowed key closest to `key` (edit distance at most 2), for hints.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (distance(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_whole_floats_and_reject_fractions() {
        assert_eq!(as_integer(&json!(80)), Some(Ok(80)));
        assert_eq!(as_integer(&json!(80.0)), Some(Ok(80)));
        assert_eq!(as_integer(&json!(1.5)), None);
        assert_eq!(as_integer(&json!(u64::MAX)), Some(Err(())));
        assert_eq!(as_integer(&json!("80")), None);
    }

    #[test]
    fn unknown_field_suggests_the_closest_known_one() {
        let v = json!({"prot": 1, "_comment": "x"});
        let mut ctx = Ctx::default();
        let r = Record::new(&mut ctx, &v, FieldPath::root().field("s")).unwrap();
        r.check_fields(&mut ctx, &["protocol", "port", "host"]);
        assert_eq!(ctx.issues.len(), 1);
        assert_eq!(
            ctx.issues[0].to_string(),
            "s: unknown field 'prot' (did you mean 'port'?)"
        );
    }

    #[test]
    fn long_strings_are_cut_in_messages() {
        let s = "x".repeat(200);
        assert!(quote(&s).len() < 100);
    }
}
