//! Delivery procedures: how long each session state lives. (A procedure's pipeline steps
//! are the pipeline wing's, `pipeline::steps`.) Stored as JSON on the procedure.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    fn timeouts_are_checked_and_fall_back() {
        let t = Timeouts::parse(&json!({"ready": 60})).ok();
        assert_eq!(t.map(|t| t.or(Timeouts::server_defaults()).ready), Some(Some(60)));
        assert!(Timeouts::parse(&json!({"ready": 0})).is_err());
        assert!(Timeouts::parse(&json!({"later": 5})).is_err());
        assert!(Timeouts::parse(&json!({"ready": "soon"})).is_err());
    }
}
