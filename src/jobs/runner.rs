//! A pipeline worker: claim a job (with a lease), keep the lease alive while the steps
//! run, then record the outcome, only if the lease is still ours. A worker that dies
//! simply stops renewing; when its lease runs out another worker takes the job over.

use std::time::Duration;

use serde_json::Value;

use super::pipeline::{self, Deliverable, ImageRef, Work};
use crate::db::session::StateChange;
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::service::sessions::{self, Applied, Details, JobSettings};
use crate::state::AppState;
use crate::time;

pub async fn run(state: AppState, worker: String) {
    let poll = Duration::from_millis(state.settings.poll_interval_ms);
    loop {
        // Register for the wake-up before looking, so an enqueue in between is not missed.
        let notified = state.jobs_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match claim_next(&state, &worker).await {
            Ok(Some(work)) => {
                run_one(&state, &worker, work).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(worker, error = %e, "claiming a job failed"),
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(state.settings.job_lease_secs).unwrap_or(30))
}

/// Claims the next job and moves its session to `processing`.
pub async fn claim_next(state: &AppState, worker: &str) -> Result<Option<Work>> {
    let worker = worker.to_owned();
    let lease = lease(state);
    let app = JobSettings::of(state);
    state.db.run(move |conn| write_transaction(conn, |conn| claim_in(conn, &app, &worker, lease))).await
}

fn claim_in(
    conn: &mut AnyConnection,
    app: &JobSettings,
    worker: &str,
    lease: chrono::Duration,
) -> Result<Option<Work>> {
    let now = time::now();
    let Some(job) = db::job::claim(conn, worker, now, now + lease)? else { return Ok(None) };
    let drop_job = |conn: &mut AnyConnection, why: &str| -> Result<Option<Work>> {
        tracing::info!(job = %job.id, why, "dropping a job");
        db::job::complete(conn, &job.id, worker)?;
        Ok(None)
    };
    if job.kind != sessions::PIPELINE_JOB {
        return drop_job(conn, "unknown job kind");
    }
    let Some(session_id) = job.session_id.clone() else { return drop_job(conn, "no session") };
    let Some(s) = db::session::find(conn, &session_id)?.filter(|s| s.expired_at.is_none()) else {
        return drop_job(conn, "the session is gone");
    };
    let Some(s) = sessions::apply_due_timers(conn, s, now)? else { return drop_job(conn, "the session expired") };
    let attempt = job.attempts;
    let s = match s.state.parse::<State>()? {
        State::Queued => {
            let msg = format!("worker {worker} claimed the pipeline job (attempt {attempt})");
            match sessions::apply(conn, app, &s, Event::Claim, now, Details::because(msg))? {
                Applied::Moved(s) => s,
                _ => return drop_job(conn, "the session moved on"),
            }
        }
        State::Processing => {
            let msg = format!("worker {worker} took the job over after the previous lease ran out (attempt {attempt})");
            sessions::log_event(
                conn,
                &s.id,
                now,
                "takeover",
                Some(State::Processing),
                Some(State::Processing),
                Some(msg),
            )?;
            s
        }
        _ => return drop_job(conn, "the session is not waiting for the pipeline"),
    };
    if job.attempts > job.max_attempts {
        let reason = format!(
            "the pipeline failed {} times; last error: {}",
            job.max_attempts,
            job.last_error.as_deref().unwrap_or("the worker stopped")
        );
        sessions::apply(conn, app, &s, Event::PipelineFailed, now, Details::because(reason))?;
        db::job::complete(conn, &job.id, worker)?;
        return Ok(None);
    }
    let target = s.target_firmware_id.clone().ok_or_else(|| Error::internal("a started session without target"))?;
    let fw = db::firmware::find(conn, &target)?.ok_or_else(|| Error::internal("target firmware vanished"))?;
    let model = db::model::find(conn, &fw.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
    let timeouts = sessions::timeouts_of(&s)?;
    Ok(Some(Work {
        job_id: job.id,
        attempt,
        max_attempts: job.max_attempts,
        session_id: s.id.clone(),
        steps: sessions::steps_of(&s)?,
        confirm: s.confirm,
        time_limit: Duration::from_secs(timeouts.processing.unwrap_or(1800)),
        model: model.tid,
        version: fw.version.clone(),
        image: ImageRef {
            key: fw.object_key.ok_or_else(|| Error::internal("target firmware without image"))?,
            size: fw.size.unwrap_or_default(),
            sha256: fw.sha256.unwrap_or_default(),
            sha1: fw.sha1.unwrap_or_default(),
            md5: fw.md5.unwrap_or_default(),
            filename: fw.filename.unwrap_or_else(|| "firmware.bin".into()),
        },
    }))
}

/// Runs the steps under the per-attempt time limit while renewing the lease.
async fn run_one(state: &AppState, worker: &str, work: Work) {
    tracing::info!(worker, session = %work.session_id, attempt = work.attempt, "pipeline started");
    let outcome = tokio::select! {
        r = tokio::time::timeout(work.time_limit, pipeline::run(state, &work)) => match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the pipeline took longer than {} s", work.time_limit.as_secs())),
        },
        () = keep_lease(state, worker, &work.job_id) => {
            tracing::warn!(worker, session = %work.session_id, "lost the job's lease; another worker has it");
            return;
        }
    };
    let recorded = match outcome {
        Ok(deliverable) => finish(state, worker, &work, deliverable).await,
        Err(error) => attempt_failed(state, worker, &work, error).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(worker, session = %work.session_id, error = %e, "recording the pipeline outcome failed");
    }
}

/// Renews the lease every third of its length; returns when it was lost.
async fn keep_lease(state: &AppState, worker: &str, job_id: &str) {
    let every = Duration::from_millis(state.settings.job_lease_secs * 1000 / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let (w, j, lease) = (worker.to_owned(), job_id.to_owned(), lease(state));
        match state.db.run(move |conn| Ok(db::job::heartbeat(conn, &j, &w, time::now() + lease)?)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "renewing a job lease failed; will retry"),
        }
    }
}

async fn finish(state: &AppState, worker: &str, work: &Work, d: Deliverable) -> Result<()> {
    let (worker, work_c) = (worker.to_owned(), work.clone());
    let app = JobSettings::of(state);
    state
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if !db::job::complete(conn, &work_c.job_id, &worker)? {
                    return Ok(()); // another worker owns it now and will record its own result
                }
                let Some(s) = db::session::find(conn, &work_c.session_id)? else { return Ok(()) };
                let mut payload = d.extras.clone();
                payload.insert("size".into(), d.size.into());
                payload.insert("sha256".into(), d.sha256.clone().into());
                payload.insert("md5".into(), d.md5.clone().into());
                payload.insert("sha1".into(), d.sha1.clone().into());
                payload.insert("filename".into(), d.filename.clone().into());
                let details = Details {
                    message: Some(format!("the pipeline produced {} ({} bytes)", d.filename, d.size)),
                    change: StateChange {
                        payload: Some(Some(Value::Object(payload).to_string())),
                        artifact_key: Some(Some(d.key.clone())),
                        artifact_sha256: Some(Some(d.sha256.clone())),
                        ..StateChange::default()
                    },
                };
                match sessions::apply(
                    conn,
                    &app,
                    &s,
                    Event::PipelineDone { confirm: work_c.confirm },
                    time::now(),
                    details,
                ) {
                    Ok(_) => Ok(()),
                    // e.g. the session was failed meanwhile: the artifact stays cached
                    Err(Error::Conflict { detail, .. }) => {
                        tracing::info!(session = %s.id, detail, "pipeline result not applied");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await?;
    tracing::info!(session = %work.session_id, "pipeline finished");
    Ok(())
}

/// Schedules another attempt with exponential back-off, or fails the session for good.
async fn attempt_failed(state: &AppState, worker: &str, work: &Work, error: String) -> Result<()> {
    tracing::warn!(session = %work.session_id, attempt = work.attempt, %error, "pipeline attempt failed");
    let (worker, work) = (worker.to_owned(), work.clone());
    let app = JobSettings::of(state);
    let base = state.settings.poll_interval_ms;
    state
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let now = time::now();
                let message = format!("attempt {} failed: {error}", work.attempt);
                if work.attempt < work.max_attempts {
                    let factor = 1u64 << u32::try_from(work.attempt.clamp(1, 10) - 1).unwrap_or(0);
                    let delay =
                        chrono::Duration::milliseconds(i64::try_from((base * factor).min(60_000)).unwrap_or(60_000));
                    if db::job::retry_later(conn, &work.job_id, &worker, now + delay, &error)? {
                        sessions::log_event(conn, &work.session_id, now, "attempt_failed", None, None, Some(message))?;
                    }
                    return Ok(());
                }
                if !db::job::complete(conn, &work.job_id, &worker)? {
                    return Ok(());
                }
                if let Some(s) = db::session::find(conn, &work.session_id)? {
                    let reason = format!("processing error: {error}");
                    if let Err(e) =
                        sessions::apply(conn, &app, &s, Event::PipelineFailed, now, Details::because(reason))
                    {
                        tracing::info!(session = %s.id, error = %e, "pipeline failure not applied");
                    }
                }
                Ok(())
            })
        })
        .await
}
