//! The durable job queue's use-cases (pict-rs's lease shape, `style-and-crates.md` §4).
//! Jobs are typed ([`Job`]), enqueued in the transaction that causes them, claimed by
//! workers with a lease they keep renewing, and taken over by another worker when a crashed
//! one's lease runs out. Every write after the claim is conditional on still holding the
//! lease. `jobs/` (the worker loop) only claims, heartbeats and dispatches through here.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::assignments;
use super::outbox::{self, Notice};
use super::pipeline;
use super::session::engine::Limits;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

/// A unit of background work. Stored as the row's `kind` and its JSON `payload`.
/// (Room is kept for rollouts: a `RolloutAdvance` job reacting to results would be one more
/// variant here and one more arm in the worker's dispatch.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Prepare a session's deliverable.
    Pipeline { session: String },
    /// Tell a door about a session (the outbox).
    Deliver(Notice),
    /// Carry out a large assignment, a chunk of devices per transaction.
    Assign { assignment: String },
}

impl Job {
    pub const PIPELINE: &str = "pipeline";

    pub fn kind(&self) -> &'static str {
        match self {
            Job::Pipeline { .. } => Job::PIPELINE,
            Job::Deliver(_) => "deliver",
            Job::Assign { .. } => "assign",
        }
    }

    fn session(&self) -> Option<&str> {
        match self {
            Job::Pipeline { session } => Some(session),
            Job::Deliver(notice) => notice.session.as_deref(),
            Job::Assign { .. } => None,
        }
    }

    /// Reads a row back. The kind column is authoritative; older rows' payloads lack it.
    fn decode(kind: &str, payload: &str) -> Option<Job> {
        let mut value: Value = serde_json::from_str(payload).ok()?;
        value.as_object_mut()?.insert("kind".into(), kind.into());
        serde_json::from_value(value).ok()
    }
}

/// Adds a job to the queue, in the caller's transaction: it exists only if that commits.
pub fn enqueue(conn: &mut AnyConnection, job: &Job, at: NaiveDateTime, max_attempts: u32) -> Result<()> {
    let row = db::job::Job {
        id: uuid::Uuid::now_v7().to_string(),
        kind: job.kind().to_owned(),
        session_id: job.session().map(str::to_owned),
        payload: serde_json::to_string(job).map_err(|e| Error::internal(e.to_string()))?,
        run_at: at,
        attempts: 0,
        max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: at,
    };
    db::job::enqueue(conn, &row)?;
    Ok(())
}

/// How many pipeline jobs wait or run (the queue limit counts these).
pub fn pipeline_backlog(conn: &mut AnyConnection) -> Result<i64> {
    Ok(db::job::count_kind(conn, Job::PIPELINE)?)
}

/// Locks a session's pipeline job until the transaction ends: a transition that will drop
/// the job takes the job's lock before the session's, in the order a claim takes them.
pub fn lock_pipeline_job(conn: &mut AnyConnection, session: &str) -> Result<()> {
    Ok(db::job::lock_for_session(conn, session, Job::PIPELINE)?)
}

/// A session that will never be processed needs no pipeline job.
pub fn drop_pipeline_job(conn: &mut AnyConnection, session: &str) -> Result<()> {
    db::job::delete_for_session(conn, session, Job::PIPELINE)?;
    Ok(())
}

/// A claimed job and whose lease it is.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job_id: String,
    pub worker: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
    /// What the previous attempt failed with.
    pub last_error: Option<String>,
}

/// What a worker got to do.
pub enum Task {
    Pipeline(Box<pipeline::Task>),
    Deliver(outbox::Delivery),
    Assign(assignments::Task),
}

fn lease_length(hub: &Hub) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(hub.settings.job_lease_secs).unwrap_or(30))
}

/// Claims the next job and prepares it (a pipeline job moves its session to `processing`
/// in the same transaction). Jobs that have nothing left to do are completed on the way.
pub async fn claim_next(hub: &Hub, worker: &str) -> Result<Option<Task>> {
    let worker = worker.to_owned();
    let lease = lease_length(hub);
    let limits = Limits::of(hub);
    hub.db
        .run(move |conn| {
            for _ in 0..16 {
                let claimed = write_transaction_retrying(conn, |conn| claim_one(conn, &limits, &worker, lease))?;
                match claimed {
                    Claim::Task(task) => return Ok(Some(*task)),
                    Claim::Done => continue,
                    Claim::Nothing => return Ok(None),
                }
            }
            Ok(None)
        })
        .await
}

enum Claim {
    Task(Box<Task>),
    /// The job was claimed and completed at once: look for the next.
    Done,
    Nothing,
}

fn claim_one(conn: &mut AnyConnection, limits: &Limits, worker: &str, lease: chrono::Duration) -> Result<Claim> {
    let now = time::now();
    let Some(row) = db::job::claim(conn, worker, now, now + lease)? else { return Ok(Claim::Nothing) };
    let held = Lease {
        job_id: row.id.clone(),
        worker: worker.to_owned(),
        attempt: row.attempts,
        max_attempts: row.max_attempts,
        last_error: row.last_error.clone(),
    };
    let Some(job) = Job::decode(&row.kind, &row.payload) else {
        tracing::warn!(job = %row.id, kind = %row.kind, "dropping a job this version cannot read");
        complete(conn, &held)?;
        return Ok(Claim::Done);
    };
    let task = match job {
        Job::Pipeline { session } => {
            pipeline::begin(conn, limits, &held, &session, now)?.map(|t| Task::Pipeline(Box::new(t)))
        }
        Job::Deliver(notice) => Some(Task::Deliver(outbox::Delivery { lease: held.clone(), notice })),
        Job::Assign { assignment } => Some(Task::Assign(assignments::Task { lease: held.clone(), assignment })),
    };
    match task {
        Some(task) => Ok(Claim::Task(Box::new(task))),
        None => {
            complete(conn, &held)?;
            Ok(Claim::Done)
        }
    }
}

/// Removes a finished job, only if the lease is still ours.
pub fn complete(conn: &mut AnyConnection, lease: &Lease) -> Result<bool> {
    Ok(db::job::complete(conn, &lease.job_id, &lease.worker)?)
}

/// Releases the lease and schedules another attempt after an exponential back-off
/// (`base_ms` · 2^(attempt−1), at most a minute). `false`: the lease was no longer ours.
pub fn retry_later(conn: &mut AnyConnection, lease: &Lease, base_ms: u64, error: &str) -> Result<bool> {
    let factor = 1u64 << u32::try_from(lease.attempt.clamp(1, 10) - 1).unwrap_or(0);
    let delay = chrono::Duration::milliseconds(i64::try_from((base_ms * factor).min(60_000)).unwrap_or(60_000));
    Ok(db::job::retry_later(conn, &lease.job_id, &lease.worker, time::now() + delay, error)?)
}

/// Extends the lease; `false` means another worker took the job over.
pub async fn heartbeat(hub: &Hub, lease: &Lease) -> Result<bool> {
    let (id, worker) = (lease.job_id.clone(), lease.worker.clone());
    let until = time::now() + lease_length(hub);
    hub.db.run(move |conn| Ok(db::job::heartbeat(conn, &id, &worker, until)?)).await
}

/// Renews a lease every third of its length; returns when it was lost.
pub async fn keep_lease(hub: &Hub, lease: &Lease) {
    let every = Duration::from_millis(hub.settings.job_lease_secs * 1000 / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        match heartbeat(hub, lease).await {
            Ok(true) => {}
            Ok(false) => return,
            // a passing database error: try again next time; the lease still has time
            Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "renewing a job lease failed"),
        }
    }
}
