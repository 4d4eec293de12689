//! Fires due session timers. Reads apply them too (a GET never shows a state whose time
//! has passed); the sweeper makes them happen for sessions nobody reads, e.g. a `queued`
//! session whose job no worker took.

use std::time::Duration;

use crate::service::Hub;
use crate::service::session::engine;

pub async fn run(hub: Hub) {
    let interval = Duration::from_millis(hub.settings.poll_interval_ms);
    loop {
        match engine::sweep_due(&hub).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "session timers fired"),
            Err(e) => tracing::warn!(error = %e, "sweeping session timers failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
