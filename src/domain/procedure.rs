//! Delivery procedures: the ordered pipeline steps that turn a firmware image into what a
//! device downloads, whether the device must confirm, and how long each session state
//! lives. Stored as JSON on the procedure; validated here, run by `jobs::pipeline`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One pipeline step. Each reads the previous step's output (the first reads the firmware
/// image) and writes the next; the last output is the deliverable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// The image as it is (a copy into the deliverable's content-addressed key).
    Image,
    /// gzip-compress the previous output (`level` 0–9, default 6).
    Gzip {
        #[serde(default = "default_gzip_level")]
        level: u32,
    },
    /// Pass the previous output through and publish a SHA-256 manifest of it
    /// (`payload.manifest`), so a device can check what it received.
    Manifest,
}

fn default_gzip_level() -> u32 {
    6
}

pub const STEP_TYPES: &str = "image, gzip, manifest";

/// Reads and checks a procedure's `steps` from client JSON.
pub fn parse_steps(value: &serde_json::Value) -> Result<Vec<Step>> {
    let steps: Vec<Step> = serde_json::from_value(value.clone()).map_err(|e| {
        Error::invalid(format!(
            "steps: expected a list of {{\"type\": ...}} objects with type one of {STEP_TYPES} ({e})"
        ))
    })?;
    if steps.len() > 16 {
        return Err(Error::invalid("steps: at most 16 steps"));
    }
    for step in &steps {
        if let Step::Gzip { level } = step
            && *level > 9
        {
            return Err(Error::invalid("steps: gzip level must be 0 to 9"));
        }
    }
    Ok(steps)
}

/// Per-state lifetimes in seconds. A procedure stores only what it overrides; `None`
/// falls back to the server default ([`Timeouts::server_defaults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to_date: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<u64>,
    /// How long a session may wait for a worker before it fails with a queueing error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    /// How long the pipeline may run in total (over all attempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing: Option<u64>,
    /// How long the device has to confirm before the session becomes `unconfirmed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<u64>,
}

/// The longest lifetime a state may be given: 30 days.
pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

impl Timeouts {
    /// Defaults when neither the procedure nor the server configuration says otherwise.
    /// `ready` is 15 minutes, as in seed 003's example response.
    pub fn server_defaults() -> Self {
        Timeouts {
            up_to_date: Some(15 * 60),
            ready: Some(15 * 60),
            queued: Some(10 * 60),
            processing: Some(30 * 60),
            created: Some(24 * 3600),
            success: Some(24 * 3600),
            fail: Some(24 * 3600),
            unconfirmed: Some(24 * 3600),
        }
    }

    pub fn parse(value: &serde_json::Value) -> Result<Self> {
        let t: Timeouts = serde_json::from_value(value.clone()).map_err(|e| {
            Error::invalid(format!(
                "timeouts: expected an object of seconds keyed by up_to_date, ready, queued, processing, created, success, fail, unconfirmed ({e})"
            ))
        })?;
        t.check()?;
        Ok(t)
    }

    /// Each given lifetime is 1 second to [`MAX_TIMEOUT_SECS`].
    pub fn check(&self) -> Result<()> {
        if self.values().into_iter().flatten().any(|secs| secs == 0 || secs > MAX_TIMEOUT_SECS) {
            return Err(Error::invalid(format!("timeouts: each value must be 1 to {MAX_TIMEOUT_SECS} seconds")));
        }
        Ok(())
    }

    fn values(&self) -> [Option<u64>; 8] {
        [
            self.up_to_date,
            self.ready,
            self.queued,
            self.processing,
            self.created,
            self.success,
            self.fail,
            self.unconfirmed,
        ]
    }

    /// Fills every unset value from `fallback`.
    pub fn or(self, fallback: Timeouts) -> Timeouts {
        Timeouts {
            up_to_date: self.up_to_date.or(fallback.up_to_date),
            ready: self.ready.or(fallback.ready),
            queued: self.queued.or(fallback.queued),
            processing: self.processing.or(fallback.processing),
            created: self.created.or(fallback.created),
            success: self.success.or(fallback.success),
            fail: self.fail.or(fallback.fail),
            unconfirmed: self.unconfirmed.or(fallback.unconfirmed),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn steps_parse_and_refuse_unknown_types() {
        let steps = parse_steps(&json!([{"type": "image"}, {"type": "gzip"}, {"type": "manifest"}])).ok();
        assert_eq!(steps, Some(vec![Step::Image, Step::Gzip { level: 6 }, Step::Manifest]));
        assert!(parse_steps(&json!([{"type": "teleport"}])).is_err());
        assert!(parse_steps(&json!([{"type": "gzip", "level": 12}])).is_err());
        assert!(parse_steps(&json!({"type": "image"})).is_err());
    }

    #[test]
    fn timeouts_are_checked_and_fall_back() {
        let t = Timeouts::parse(&json!({"ready": 60})).ok();
        assert_eq!(t.map(|t| t.or(Timeouts::server_defaults()).ready), Some(Some(60)));
        assert!(Timeouts::parse(&json!({"ready": 0})).is_err());
        assert!(Timeouts::parse(&json!({"later": 5})).is_err());
        assert!(Timeouts::parse(&json!({"ready": "soon"})).is_err());
    }
}
