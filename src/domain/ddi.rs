//! hawkBit DDI v1 rules that involve no I/O: how a device should handle an action, the
//! polling interval format, and what feedback means for a session.
//! Protocol facts: `../shared/specs/hawkbit-ddi-dmf.md`.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How the device is asked to act on an assignment (hawkBit's action type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionType {
    /// Download and install at once.
    Forced,
    /// Download and install when convenient.
    Soft,
    /// Download, never install; `downloaded` ends the action.
    DownloadOnly,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::Forced => "forced",
            ActionType::Soft => "soft",
            ActionType::DownloadOnly => "download_only",
        }
    }
}

impl FromStr for ActionType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "forced" => Ok(ActionType::Forced),
            "soft" => Ok(ActionType::Soft),
            "download_only" => Ok(ActionType::DownloadOnly),
            other => Err(Error::invalid(format!("action_type: {other:?} is not forced, soft or download_only"))),
        }
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `deployment.download` / `deployment.update` (`skip | attempt | forced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    Skip,
    Attempt,
    Forced,
}

impl Handling {
    pub fn as_str(self) -> &'static str {
        match self {
            Handling::Skip => "skip",
            Handling::Attempt => "attempt",
            Handling::Forced => "forced",
        }
    }
}

/// What the deployment answer tells the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub download: Handling,
    pub update: Handling,
    /// `Some(true)`: `maintenanceWindow: available`; `Some(false)`: `unavailable`; `None`:
    /// no window (the field is left out).
    pub window_open: Option<bool>,
}

/// hawkBit's table (spec §1.4): a closed maintenance window turns `update` into `skip`.
pub fn deployment(
    action: ActionType,
    window: Option<(NaiveDateTime, NaiveDateTime)>,
    now: NaiveDateTime,
) -> Deployment {
    let (download, update) = match action {
        ActionType::Forced => (Handling::Forced, Handling::Forced),
        ActionType::Soft => (Handling::Attempt, Handling::Attempt),
        ActionType::DownloadOnly => (Handling::Forced, Handling::Skip),
    };
    match window {
        None => Deployment { download, update, window_open: None },
        Some((start, end)) => {
            let open = start <= now && now < end;
            Deployment { download, update: if open { update } else { Handling::Skip }, window_open: Some(open) }
        }
    }
}

/// The opaque `c` query value: changes whenever the device's instructions change (how it
/// should handle the action, or the window opening), so the poll's ETag changes too.
pub fn c_value(action_number: i64, d: &Deployment) -> i64 {
    let salt = match (d.update, d.window_open) {
        (_, Some(true)) => 1249,
        (Handling::Forced, _) => 1231,
        _ => 1237,
    };
    31 * action_number + salt
}

pub const MIN_POLLING_SECS: i64 = 30;
/// Never a day or more: longer values make hawkBit emit ISO-8601, which rauc-hawkbit-updater,
/// SWUpdate and the Rust crate cannot read (spec §0.1).
pub const MAX_POLLING_SECS: i64 = 24 * 3600 - 1;

/// `config.polling.sleep` as `HH:MM:SS`, clamped to 00:00:30 … 23:59:59.
pub fn polling_sleep(secs: i64) -> String {
    let s = secs.clamp(MIN_POLLING_SECS, MAX_POLLING_SECS);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// `status.execution` of a feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Closed,
    Proceeding,
    Canceled,
    Scheduled,
    Rejected,
    Resumed,
    Downloaded,
    Download,
}

impl Execution {
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Closed => "closed",
            Execution::Proceeding => "proceeding",
            Execution::Canceled => "canceled",
            Execution::Scheduled => "scheduled",
            Execution::Rejected => "rejected",
            Execution::Resumed => "resumed",
            Execution::Downloaded => "downloaded",
            Execution::Download => "download",
        }
    }
}

/// `status.result.finished` of a feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

impl Finished {
    pub fn as_str(self) -> &'static str {
        match self {
            Finished::Success => "success",
            Finished::Failure => "failure",
            Finished::None => "none",
        }
    }
}

/// What a deployment feedback does to the session (spec §3.2, seeds 000–002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackEffect {
    /// The action is over: `success` or `fail`. `installed`: the device now runs the target.
    Close { success: bool, installed: bool },
    /// Recorded in the history with this hawkBit status; the session stays as it is.
    Record(&'static str),
}

pub fn deployment_feedback(action: ActionType, execution: Execution, finished: Finished) -> FeedbackEffect {
    use Execution as X;
    match (execution, finished) {
        (X::Closed, Finished::Success | Finished::None) => {
            FeedbackEffect::Close { success: true, installed: action != ActionType::DownloadOnly }
        }
        (X::Closed, Finished::Failure) => FeedbackEffect::Close { success: false, installed: false },
        (X::Downloaded, _) if action == ActionType::DownloadOnly => {
            FeedbackEffect::Close { success: true, installed: false }
        }
        (X::Downloaded, _) => FeedbackEffect::Record("DOWNLOADED"),
        (X::Download, _) => FeedbackEffect::Record("DOWNLOAD"),
        // `canceled` does not close an action (hawkBit #952): the device must send `closed`.
        (X::Canceled, _) => FeedbackEffect::Record("CANCELED"),
        (X::Rejected, _) => FeedbackEffect::Record("WARNING"),
        (X::Proceeding | X::Scheduled | X::Resumed, _) => FeedbackEffect::Record("RUNNING"),
    }
}

/// What a cancel feedback does (spec §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelEffect {
    /// The device stopped: the session ends as `fail` with reason `canceled`.
    Canceled,
    /// The device will not (or could not) cancel: the update goes on.
    Refused(&'static str),
    /// Recorded only; the cancel stays pending.
    Record(&'static str),
}

pub fn cancel_feedback(execution: Execution, finished: Finished) -> CancelEffect {
    use Execution as X;
    match (execution, finished) {
        (X::Closed, Finished::Success | Finished::None) => CancelEffect::Canceled,
        (X::Closed, Finished::Failure) => CancelEffect::Refused("ERROR"),
        (X::Rejected, _) => CancelEffect::Refused("CANCEL_REJECTED"),
        (X::Canceled, _) => CancelEffect::Record("WARNING"),
        _ => CancelEffect::Record("RUNNING"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).and_then(|d| d.and_hms_opt(h, 0, 0)).unwrap_or_default()
    }

    #[test]
    fn sleep_is_hh_mm_ss_and_never_a_day() {
        assert_eq!(polling_sleep(300), "00:05:00");
        assert_eq!(polling_sleep(5), "00:00:30");
        assert_eq!(polling_sleep(36 * 3600), "23:59:59");
        assert_eq!(polling_sleep(3661), "01:01:01");
    }

    #[test]
    fn handling_follows_type_and_window() {
        use Handling::*;
        let d = |a, w| deployment(a, w, t(12));
        assert_eq!(d(ActionType::Forced, None), Deployment { download: Forced, update: Forced, window_open: None });
        assert_eq!(d(ActionType::Soft, None), Deployment { download: Attempt, update: Attempt, window_open: None });
        assert_eq!(d(ActionType::DownloadOnly, None), Deployment { download: Forced, update: Skip, window_open: None });
        assert_eq!(d(ActionType::Forced, Some((t(13), t(14)))).update, Skip);
        assert_eq!(d(ActionType::Forced, Some((t(13), t(14)))).window_open, Some(false));
        assert_eq!(
            d(ActionType::Forced, Some((t(11), t(14)))),
            Deployment { download: Forced, update: Forced, window_open: Some(true) }
        );
        let closed = d(ActionType::Soft, Some((t(13), t(14))));
        let open = d(ActionType::Soft, Some((t(11), t(14))));
        assert_ne!(c_value(8, &closed), c_value(8, &open), "the c value changes when the window opens");
    }

    #[test]
    fn feedback_mapping_of_the_seeds() {
        use Execution as X;
        use FeedbackEffect::*;
        let f = |x, r| deployment_feedback(ActionType::Forced, x, r);
        assert_eq!(f(X::Closed, Finished::Success), Close { success: true, installed: true });
        assert_eq!(
            f(X::Closed, Finished::None),
            Close { success: true, installed: true },
            "NONE is handled like SUCCESS"
        );
        assert_eq!(f(X::Closed, Finished::Failure), Close { success: false, installed: false });
        for x in [X::Proceeding, X::Scheduled, X::Resumed] {
            assert_eq!(f(x, Finished::None), Record("RUNNING"));
        }
        assert_eq!(f(X::Download, Finished::None), Record("DOWNLOAD"));
        assert_eq!(f(X::Downloaded, Finished::None), Record("DOWNLOADED"));
        assert_eq!(f(X::Canceled, Finished::Success), Record("CANCELED"), "canceled does not close (#952)");
        assert_eq!(
            deployment_feedback(ActionType::DownloadOnly, X::Downloaded, Finished::None),
            Close { success: true, installed: false }
        );
        assert_eq!(cancel_feedback(X::Closed, Finished::Success), CancelEffect::Canceled);
        assert_eq!(cancel_feedback(X::Closed, Finished::Failure), CancelEffect::Refused("ERROR"));
        assert_eq!(cancel_feedback(X::Rejected, Finished::None), CancelEffect::Refused("CANCEL_REJECTED"));
        assert_eq!(cancel_feedback(X::Canceled, Finished::Success), CancelEffect::Record("WARNING"));
    }
}
