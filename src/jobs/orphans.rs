//! Sweeps the object store's orphans at start-up and then every
//! `orphan_sweep_interval_secs` (`service::orphans`).

use std::time::Duration;

use crate::service::{Hub, orphans};

pub async fn run(hub: Hub) {
    let interval = Duration::from_secs(hub.settings.orphan_sweep_interval_secs);
    loop {
        match orphans::sweep(&hub).await {
            Ok(swept) if swept == orphans::Swept::default() => {}
            Ok(swept) => tracing::info!(?swept, "swept orphans from the object store"),
            Err(e) => tracing::warn!(error = %e, "sweeping orphans failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
