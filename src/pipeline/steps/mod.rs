//! The step kinds, one file each, behind one small interface ([`Step`]): what the step is
//! called, a fingerprint of its configuration (part of the cache key), and `run`, which
//! reads the previous output and answers the next. A procedure stores its steps as JSON
//! ([`StepConfig`]); [`parse_steps`] checks them when the procedure is created or changed,
//! so a bad step list is refused then, never found out at run time.

pub mod compress;
pub mod delta;
pub mod encrypt;
pub mod gzip;
pub mod image;
pub mod manifest;
pub mod sign;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Output, Work};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// One step as a procedure configures it. The JSON form is `{"type": "<kind>", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepConfig {
    /// The image as it is.
    Image,
    /// gzip-compress the previous output.
    Gzip(gzip::Gzip),
    /// Pass the previous output through and publish a SHA-256 manifest of it.
    Manifest,
    /// zstd- or gzip-compress the previous output.
    Compress(compress::Compress),
    /// A patch from the device's current image to the target (or the full image).
    Delta(delta::Delta),
    /// age-encrypt to the device's (or the model's) public key.
    Encrypt(encrypt::Encrypt),
    /// minisign-sign the deliverable and publish a signed manifest.
    Sign(sign::Sign),
}

pub const STEP_TYPES: &str = "image, gzip, manifest, compress, delta, encrypt, sign";

/// The most steps one procedure may have.
pub const MAX_STEPS: usize = 16;

/// What a running step may use.
pub struct Context<'a> {
    pub storage: &'a Storage,
    pub work: &'a Work,
    /// Where a step that writes puts its output: a name of this run's own.
    pub out_key: &'a str,
    /// This step's place in the procedure.
    pub index: usize,
}

/// A step kind.
pub trait Step: Send + Sync {
    /// Its `type` in a procedure.
    fn name(&self) -> &'static str;
    /// Its configuration, canonically: equal fingerprints mean equal outputs.
    fn fingerprint(&self) -> String;
    /// What else the output depends on in this run (a delta's base, a device's key), for the
    /// cache key; `None` for steps that depend on their input and configuration only.
    fn inputs(&self, _work: &Work) -> Option<String> {
        None
    }
    /// Whether the output is made for one device (from here on, outputs are not shared).
    fn per_device(&self) -> bool {
        false
    }
    /// Reads `input`, answers the next output: a new object at `ctx.out_key`, or the input
    /// itself (perhaps with more payload extras) for a step that only annotates.
    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>>;
}

/// The implementation of a configured step.
pub fn of(config: &StepConfig) -> &dyn Step {
    match config {
        StepConfig::Image => &image::Image,
        StepConfig::Gzip(gzip) => gzip,
        StepConfig::Manifest => &manifest::Manifest,
        StepConfig::Compress(c) => c,
        StepConfig::Delta(d) => d,
        StepConfig::Encrypt(e) => e,
        StepConfig::Sign(s) => s,
    }
}

/// The canonical JSON of a step's configuration, `{"type": …, …}`.
fn canonical(config: &StepConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// Reads and checks a procedure's `steps` from client JSON: a 422 naming the step (by its
/// index) and what is wrong with it.
pub fn parse_steps(value: &serde_json::Value) -> Result<Vec<StepConfig>> {
    let invalid = |detail: String| Error::unprocessable("invalid", detail);
    let list = value.as_array().ok_or_else(|| {
        invalid(format!("steps: expected a list of {{\"type\": ...}} objects with type one of {STEP_TYPES}"))
    })?;
    if list.len() > MAX_STEPS {
        return Err(invalid(format!("steps: at most {MAX_STEPS} steps")));
    }
    let mut steps = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let kind = raw.get("type").and_then(|t| t.as_str()).unwrap_or("?");
        let step: StepConfig = serde_json::from_value(raw.clone())
            .map_err(|e| invalid(format!("steps[{i}] ({kind}): {e}; type is one of {STEP_TYPES}")))?;
        let checked = match &step {
            StepConfig::Gzip(g) => g.validate(),
            StepConfig::Compress(c) => c.validate(),
            StepConfig::Delta(d) => d.validate().and_then(|()| {
                // a patch is between images: nothing may change the image before it
                if steps.iter().all(|s| *s == StepConfig::Image) {
                    Ok(())
                } else {
                    Err("delta must come first: it reads the image itself".to_owned())
                }
            }),
            StepConfig::Encrypt(e) => e.validate(),
            StepConfig::Sign(s) => s.validate().and_then(|()| {
                if steps.iter().any(|s| matches!(s, StepConfig::Sign(_))) {
                    Err("one sign step per procedure".to_owned())
                } else {
                    Ok(())
                }
            }),
            StepConfig::Image | StepConfig::Manifest => Ok(()),
        };
        checked.map_err(|why| invalid(format!("steps[{i}] ({}): {why}", of(&step).name())))?;
        steps.push(step);
    }
    Ok(steps)
}

/// The signing keys a procedure's steps name (checked to exist when it is saved).
pub fn signing_keys(steps: &[StepConfig]) -> Vec<&str> {
    steps
        .iter()
        .filter_map(|s| match s {
            StepConfig::Sign(sign) => Some(sign.key.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn steps_parse_and_refuse_unknown_types() {
        let steps = parse_steps(&json!([{"type": "image"}, {"type": "gzip"}, {"type": "manifest"}])).ok();
        assert_eq!(
            steps,
            Some(vec![StepConfig::Image, StepConfig::Gzip(gzip::Gzip { level: 6 }), StepConfig::Manifest])
        );
        assert!(parse_steps(&json!([{"type": "teleport"}])).is_err());
        assert!(parse_steps(&json!([{"type": "gzip", "level": 12}])).is_err());
        assert!(parse_steps(&json!([{"type": "gzip", "levle": 1}])).is_err(), "unknown fields are refused");
        assert!(parse_steps(&json!({"type": "image"})).is_err());
    }

    fn refusal(steps: serde_json::Value) -> String {
        match parse_steps(&steps) {
            Err(Error::Unprocessable { detail, .. }) => detail,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn new_steps_are_checked_with_their_index_and_reason() {
        let ok = parse_steps(&json!([
            {"type": "delta"},
            {"type": "compress", "level": 19, "long": true},
            {"type": "encrypt"},
            {"type": "sign", "key": "0192e0a4-7a4e-7cc0-8a4e-0a4e7cc08a4e"}
        ]));
        assert!(ok.is_ok(), "{ok:?}");
        assert!(refusal(json!([{"type": "compress", "level": 30}])).starts_with("steps[0] (compress): level"));
        assert!(
            refusal(json!([{"type": "image"}, {"type": "compress", "algorithm": "gzip", "long": true}]))
                .starts_with("steps[1] (compress)")
        );
        assert!(refusal(json!([{"type": "compress", "window_log": 40}])).contains("window_log"));
        assert!(refusal(json!([{"type": "gzip"}, {"type": "delta"}])).contains("delta must come first"));
        assert!(refusal(json!([{"type": "delta", "max_ratio": 2}])).contains("max_ratio"));
        assert!(refusal(json!([{"type": "encrypt", "recipient": "age1nope"}])).starts_with("steps[0] (encrypt)"));
        assert!(refusal(json!([{"type": "sign"}])).starts_with("steps[0] (sign)"));
        assert!(refusal(json!([{"type": "sign", "key": "x"}])).contains("not a signing key id"));
        assert!(refusal(json!([{"type": "image"}, {"type": "teleport"}])).starts_with("steps[1] (teleport)"));
    }

    #[test]
    fn fingerprints_are_the_configuration_json() {
        // the cache key hashes these; they must not change for existing procedures
        let gzip = StepConfig::Gzip(gzip::Gzip { level: 6 });
        assert_eq!(of(&gzip).fingerprint(), r#"{"type":"gzip","level":6}"#);
        assert_eq!(of(&StepConfig::Image).fingerprint(), r#"{"type":"image"}"#);
        assert_eq!(of(&StepConfig::Manifest).name(), "manifest");
    }
}
