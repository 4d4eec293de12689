//! `/metrics`: the process's counters (`crate::metrics`), plus what only the database knows,
//! asked now: live sessions by state and door, the job queue, the connection pool.

use crate::db;
use crate::error::{Error, Result};
use crate::metrics::{self, KindLabels, PoolLabels, SessionLabels};
use crate::service::Hub;
use crate::time;

/// The text Prometheus scrapes.
pub async fn render(hub: &Hub) -> Result<String> {
    let (sessions, waiting) =
        hub.db.run(|conn| Ok((db::session::count_by_state(conn)?, db::job::waiting_by_kind(conn)?))).await?;
    // one scrape at a time sets the gauges and encodes them: two at once must not mix
    static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SCRAPE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let m = metrics::get();
    m.sessions.clear();
    for (state, action_type, n) in sessions {
        let door = if action_type.is_some() { "hawkbit" } else { "rest" };
        m.sessions.get_or_create(&SessionLabels { state, door }).inc_by(n);
    }
    m.queue_depth.clear();
    m.queue_oldest_age.clear();
    let now = time::now();
    for (kind, n, oldest) in waiting {
        let labels = KindLabels { kind };
        m.queue_depth.get_or_create(&labels).set(n);
        let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        m.queue_oldest_age.get_or_create(&labels).set(age);
    }
    let (open, idle, max) = hub.db.pool_use();
    m.pool_connections.get_or_create(&PoolLabels { state: "idle" }).set(i64::from(idle));
    m.pool_connections.get_or_create(&PoolLabels { state: "in_use" }).set(i64::from(open.saturating_sub(idle)));
    m.pool_max.set(i64::from(max));
    m.encode().map_err(|e| Error::internal(format!("encoding metrics: {e}")))
}
