//! Fires due session timers. Reads apply them too (a GET never shows a state whose time
//! has passed); the sweeper makes them happen for sessions nobody reads, e.g. a `queued`
//! session whose job no worker took. Each session changes in its own conditional update,
//! so several instances sweeping at once are harmless.

use std::time::Duration;

use crate::db::{self, write_transaction};
use crate::error::Result;
use crate::service::sessions::apply_due_timers;
use crate::state::AppState;
use crate::time;

const BATCH: i64 = 200;

pub async fn run(state: AppState) {
    let interval = Duration::from_millis(state.settings.poll_interval_ms);
    loop {
        match sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "session timers fired"),
            Err(e) => tracing::warn!(error = %e, "sweeping session timers failed"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Applies the timers of every due session; returns how many it looked at.
pub async fn sweep(state: &AppState) -> Result<usize> {
    state
        .db
        .run(|conn| {
            let now = time::now();
            let due = db::session::due(conn, now, BATCH)?;
            let n = due.len();
            for s in due {
                let id = s.id.clone();
                if let Err(e) = write_transaction(conn, |conn| apply_due_timers(conn, s, now)) {
                    tracing::warn!(session = %id, error = %e, "applying a session timer failed");
                }
            }
            Ok(n)
        })
        .await
}
