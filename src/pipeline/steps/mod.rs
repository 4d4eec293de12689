//! The step kinds, one file each, behind one small interface ([`Step`]): what the step is
//! called, a fingerprint of its configuration (part of the cache key), and `run`, which
//! reads the previous output and answers the next. A procedure stores its steps as JSON
//! ([`StepConfig`]); [`parse_steps`] checks them when the procedure is created or changed,
//! so a bad step list is refused then, never found out at run time.

pub mod gzip;
pub mod image;
pub mod manifest;

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
}

pub const STEP_TYPES: &str = "image, gzip, manifest";

/// The most steps one procedure may have.
pub const MAX_STEPS: usize = 16;

/// What a running step may use.
pub struct Context<'a> {
    pub storage: &'a Storage,
    pub work: &'a Work,
    /// Where a step that writes puts its output: a name of this run's own.
    pub out_key: &'a str,
}

/// A step kind.
pub trait Step: Send + Sync {
    /// Its `type` in a procedure.
    fn name(&self) -> &'static str;
    /// Its configuration, canonically: equal fingerprints mean equal outputs.
    fn fingerprint(&self) -> String;
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
    }
}

/// The canonical JSON of a step's configuration, `{"type": …, …}`.
fn canonical(config: &StepConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// Reads and checks a procedure's `steps` from client JSON.
pub fn parse_steps(value: &serde_json::Value) -> Result<Vec<StepConfig>> {
    let steps: Vec<StepConfig> = serde_json::from_value(value.clone()).map_err(|e| {
        Error::invalid(format!(
            "steps: expected a list of {{\"type\": ...}} objects with type one of {STEP_TYPES} ({e})"
        ))
    })?;
    if steps.len() > MAX_STEPS {
        return Err(Error::invalid(format!("steps: at most {MAX_STEPS} steps")));
    }
    for (i, step) in steps.iter().enumerate() {
        if let StepConfig::Gzip(g) = step {
            g.validate().map_err(|why| Error::invalid(format!("steps[{i}] ({}): {why}", of(step).name())))?;
        }
    }
    Ok(steps)
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

    #[test]
    fn fingerprints_are_the_configuration_json() {
        // the cache key hashes these; they must not change for existing procedures
        let gzip = StepConfig::Gzip(gzip::Gzip { level: 6 });
        assert_eq!(of(&gzip).fingerprint(), r#"{"type":"gzip","level":6}"#);
        assert_eq!(of(&StepConfig::Image).fingerprint(), r#"{"type":"image"}"#);
        assert_eq!(of(&StepConfig::Manifest).name(), "manifest");
    }
}
