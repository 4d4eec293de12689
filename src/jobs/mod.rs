//! Background work: workers that claim durable jobs with a lease and dispatch them by kind,
//! the sweeper that fires session timers, the sweep of the object store's orphans and the
//! integrity scrub. All are tokio tasks; `devicehub worker` runs them without HTTP,
//! `devicehub serve` beside it. Nothing here keeps state another instance would need (a job
//! or a timer is a row), and nothing here touches the database: claiming, leases and
//! outcomes are `service::jobs`, `service::pipeline`, `service::outbox`; the sweep is
//! `service::orphans`, the scrub `service::scrub`.

pub mod orphans;
pub mod runner;
pub mod scrubber;
pub mod sweeper;

use tokio::task::JoinSet;

use crate::service::Hub;

/// Starts `workers` workers, the session-timer sweeper, the orphan sweep and the integrity
/// scrub; they run until the set is dropped.
pub fn spawn(hub: &Hub, workers: usize) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let instance = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..workers {
        let worker_id = format!("{}-{n}", &instance[..8]);
        set.spawn(runner::run(hub.clone(), worker_id));
    }
    set.spawn(sweeper::run(hub.clone()));
    set.spawn(orphans::run(hub.clone()));
    set.spawn(scrubber::run(hub.clone(), format!("{}-scrub", &instance[..8])));
    // the instance names this process's workers in session events ("worker 1a2b3c4d-0 claimed …")
    tracing::info!(
        instance = &instance[..8],
        workers,
        "job workers, session timers, the orphan sweep and the integrity scrub started"
    );
    set
}
