//! Device attributes (the twin's `attributes`, hawkBit's controller attributes): a flat
//! map of short printable ASCII strings, at most 100 of them. The admin API and hawkBit's
//! `configData` obey the same rules.

use serde::Deserialize;
use serde_json::{Map, Value};

pub const MAX_ATTRIBUTES: usize = 100;
pub const MAX_ATTRIBUTE_LEN: usize = 128;

/// How new attributes combine with the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Upsert the given keys; a `null` value removes its key.
    #[default]
    Merge,
    /// The result is exactly the given keys.
    Replace,
    /// Remove the given keys (values ignored).
    Remove,
}

/// Why attributes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeError {
    /// A key or value breaks the rules (400).
    Invalid(String),
    /// The result would exceed [`MAX_ATTRIBUTES`] (hawkBit answers 429).
    TooMany,
}

impl From<AttributeError> for crate::error::Error {
    fn from(e: AttributeError) -> Self {
        match e {
            AttributeError::Invalid(m) => crate::error::Error::invalid(format!("attributes: {m}")),
            AttributeError::TooMany => {
                crate::error::Error::TooManyRequests(format!("attributes: at most {MAX_ATTRIBUTES} entries"))
            }
        }
    }
}

/// hawkBit's character rule: printable ASCII and white space, up to 128 characters.
fn valid_text(s: &str) -> bool {
    s.chars().count() <= MAX_ATTRIBUTE_LEN && s.chars().all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace())
}

fn check_key(k: &str) -> Result<(), AttributeError> {
    if k.is_empty() || !valid_text(k) {
        return Err(AttributeError::Invalid(format!("key {k:?} is not 1 to 128 printable ASCII characters")));
    }
    Ok(())
}

/// A complete attribute map, as an admin sets it.
pub fn validate(attributes: &Map<String, Value>) -> Result<(), AttributeError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(AttributeError::TooMany);
    }
    for (k, v) in attributes {
        check_key(k)?;
        match v {
            Value::String(s) if valid_text(s) => {}
            other => {
                return Err(AttributeError::Invalid(format!(
                    "the value of {k:?} must be a string of at most 128 printable ASCII characters, not {other}"
                )));
            }
        }
    }
    Ok(())
}

/// Applies `data` to `current` in `mode` and checks the result.
pub fn apply(
    current: &Map<String, Value>,
    mode: Mode,
    data: &Map<String, Value>,
) -> Result<Map<String, Value>, AttributeError> {
    if data.is_empty() {
        return Err(AttributeError::Invalid("data must not be empty".into()));
    }
    let mut next = match mode {
        Mode::Replace => Map::new(),
        Mode::Merge | Mode::Remove => current.clone(),
    };
    for (k, v) in data {
        check_key(k)?;
        match (mode, v) {
            (Mode::Remove, _) | (Mode::Merge, Value::Null) => {
                next.remove(k);
            }
            (_, v) => {
                next.insert(k.clone(), v.clone());
            }
        }
    }
    validate(&next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn modes_and_limits() {
        let cur = json!({"a": "1", "b": "2"});
        let cur = cur.as_object().cloned().unwrap_or_default();
        let data = |v: Value| v.as_object().cloned().unwrap_or_default();
        let merged = apply(&cur, Mode::Merge, &data(json!({"b": "3", "c": "4", "a": null})));
        assert_eq!(merged.map(Value::Object), Ok(json!({"b": "3", "c": "4"})));
        let replaced = apply(&cur, Mode::Replace, &data(json!({"x": "y"})));
        assert_eq!(replaced.map(Value::Object), Ok(json!({"x": "y"})));
        let removed = apply(&cur, Mode::Remove, &data(json!({"a": "ignored"})));
        assert_eq!(removed.map(Value::Object), Ok(json!({"b": "2"})));
        assert!(matches!(apply(&cur, Mode::Merge, &data(json!({}))), Err(AttributeError::Invalid(_))));
        assert!(matches!(apply(&cur, Mode::Merge, &data(json!({"k": "ü"}))), Err(AttributeError::Invalid(_))));
        assert!(matches!(apply(&cur, Mode::Merge, &data(json!({"k": 5}))), Err(AttributeError::Invalid(_))));
        assert!(matches!(apply(&cur, Mode::Replace, &data(json!({"k": null}))), Err(AttributeError::Invalid(_))));
        let long = "x".repeat(129);
        assert!(matches!(apply(&cur, Mode::Merge, &data(json!({"k": long}))), Err(AttributeError::Invalid(_))));
        let many: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(apply(&Map::new(), Mode::Merge, &many), Err(AttributeError::TooMany));
        assert_eq!(validate(&many), Err(AttributeError::TooMany));
    }
}
