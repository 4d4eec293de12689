//! The background scrub: every `scrub_interval_secs`, re-hashes the stored objects that are
//! due, one at a time at `scrub_bytes_per_sec` (`service::scrub`). Off when the interval is 0.

use std::time::Duration;

use crate::service::{Hub, scrub};
use crate::time;

pub async fn run(hub: Hub, owner: String) {
    let interval = hub.settings.scrub_interval_secs;
    if interval == 0 {
        return;
    }
    // look for due objects at least once a minute, so new ones are checked soon
    let idle = Duration::from_secs(interval.min(60));
    let every = chrono::Duration::seconds(i64::try_from(interval).unwrap_or(i64::MAX / 1000));
    loop {
        match scrub::pass(&hub, &owner, time::now() - every, hub.settings.scrub_bytes_per_sec).await {
            Ok(report) if report.checked > 0 || !report.failed.is_empty() => tracing::info!(
                checked = report.checked,
                bytes = report.bytes,
                quarantined = report.quarantined.len(),
                restored = report.restored.len(),
                failed = report.failed.len(),
                "integrity scrub"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the integrity scrub failed"),
        }
        tokio::time::sleep(idle).await;
    }
}
