//! The session side of the pipeline: a claimed job becomes [`crate::pipeline::Work`] (its
//! session moves to `processing` in the claim's transaction), the output cache's rows, and
//! the outcome recorded on the session through the engine. The pipeline wing itself knows
//! no database.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use super::jobs::{self, Lease};
use super::session::engine::{self, Applied, Details, Limits, state_of};
use crate::db::session::StateChange;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::digests::Digests;
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::pipeline::steps::StepConfig;
use crate::pipeline::{self, Base, DeviceKeys, Output, Work};
use crate::service::Hub;
use crate::time;

/// A claimed pipeline job, ready to run.
#[derive(Debug, Clone)]
pub struct Task {
    pub lease: Lease,
    pub session_id: String,
    pub confirm: bool,
    /// How long one attempt may take.
    pub time_limit: Duration,
    pub work: Work,
}

/// Moves the job's session to `processing` (or notes a take-over) and gathers what the
/// pipeline needs. `None`: nothing to do any more (the caller completes the job).
pub(super) fn begin(
    conn: &mut AnyConnection,
    limits: &Limits,
    lease: &Lease,
    session_id: &str,
    now: chrono::NaiveDateTime,
) -> Result<Option<Task>> {
    let worker = &lease.worker;
    let attempt = lease.attempt;
    let drop_job = |why: &str| {
        tracing::info!(job = %lease.job_id, session = session_id, why, "dropping a pipeline job");
        Ok(None)
    };
    let Some(s) = db::session::find(conn, session_id)?.filter(|s| s.expired_at.is_none()) else {
        return drop_job("the session is gone");
    };
    let Some(s) = engine::apply_due_timers(conn, s, now)? else { return drop_job("the session expired") };
    let s = match state_of(&s)? {
        State::Queued => {
            let msg = format!("worker {worker} claimed the pipeline job (attempt {attempt})");
            match engine::apply(conn, limits, &s, Event::Claim, now, Details::because(msg))? {
                Applied::Moved(s) => s,
                _ => return drop_job("the session moved on"),
            }
        }
        State::Processing => {
            let msg = format!("worker {worker} took the job over after the previous lease ran out (attempt {attempt})");
            engine::log_event(
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
        _ => return drop_job("the session is not waiting for the pipeline"),
    };
    if lease.attempt > lease.max_attempts {
        let reason = format!(
            "the pipeline failed {} times; last error: {}",
            lease.max_attempts,
            lease.last_error.as_deref().unwrap_or("the worker stopped")
        );
        engine::apply(conn, limits, &s, Event::PipelineFailed, now, Details::because(reason))?;
        return Ok(None);
    }
    let target = s.target_firmware_id.clone().ok_or_else(|| Error::internal("a started session without target"))?;
    let fw = db::firmware::find(conn, &target)?.ok_or_else(|| Error::internal("target firmware vanished"))?;
    match super::scrub::refuse_quarantined_image(conn, &fw) {
        Ok(()) => {}
        Err(Error::Quarantined(why)) => {
            // its image no longer matches: nothing to prepare from
            engine::apply(conn, limits, &s, Event::Corrupted, now, Details::because(format!("integrity: {why}")))?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let model = db::model::find(conn, &fw.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
    let timeouts = engine::timeouts_of(&s)?;
    let image = image_of(&fw).ok_or_else(|| Error::internal("target firmware without image"))?;
    let device = match &s.device_id {
        Some(id) => db::device::find(conn, id)?,
        None => None,
    };
    let steps = engine::steps_of(&s)?;
    let needs_base = steps.iter().any(|step| matches!(step, StepConfig::Delta(_)));
    Ok(Some(Task {
        lease: lease.clone(),
        session_id: s.id.clone(),
        confirm: s.confirm,
        time_limit: Duration::from_secs(timeouts.processing.unwrap_or(1800)),
        work: Work {
            session_id: s.id.clone(),
            model: model.tid,
            version: fw.version.clone(),
            firmware_id: fw.id.clone(),
            image,
            base: if needs_base { base_of(conn, &s, &fw.model_id, device.as_ref())? } else { Base::Unknown },
            device: device.map(|d| DeviceKeys { device_id: d.device_id, age_recipient: d.age_recipient }),
            sign_key: None,
            steps,
        },
    }))
}

/// A firmware's stored image as a pipeline input, if it has one.
fn image_of(fw: &db::firmware::Firmware) -> Option<Output> {
    Some(Output {
        key: fw.object_key.clone()?,
        filename: fw.filename.clone().unwrap_or_else(|| "firmware.bin".into()),
        digests: Digests {
            size: fw.size.and_then(|n| u64::try_from(n).ok()).unwrap_or_default(),
            sha256: fw.sha256.clone().unwrap_or_default(),
            sha1: fw.sha1.clone().unwrap_or_default(),
            md5: fw.md5.clone().unwrap_or_default(),
        },
        extras: Map::new(),
    })
}

/// What a delta starts from: the firmware the request named as current (seed 003's
/// `current_firmware_version`; DDI's installed action), else the version the device's twin
/// records as installed.
fn base_of(
    conn: &mut AnyConnection,
    s: &db::session::Session,
    model_id: &str,
    device: Option<&db::device::Device>,
) -> Result<Base> {
    let current = match &s.current_firmware_id {
        Some(id) => db::firmware::find(conn, id)?,
        None => None,
    };
    let current = match current {
        Some(fw) => Some(fw),
        None => {
            let version = s.current_version.clone().or_else(|| device.and_then(|d| d.installed_version.clone()));
            let Some(version) = version else { return Ok(Base::Unknown) };
            match db::firmware::find_by_model_version(conn, model_id, &version)? {
                Some(fw) => Some(fw),
                None => return Ok(Base::NotStored { version }),
            }
        }
    };
    let Some(fw) = current else { return Ok(Base::Unknown) };
    Ok(match image_of(&fw) {
        Some(image) if super::scrub::refuse_quarantined_image(conn, &fw).is_ok() => {
            Base::Stored { version: fw.version, image }
        }
        _ => Base::NotStored { version: fw.version },
    })
}

/// Runs the task's steps ([`pipeline::run`]), with the signing key a `sign` step names
/// opened for this run only.
pub async fn run(hub: &Hub, task: &Task) -> Result<Output> {
    let mut work = task.work.clone();
    if let Some(id) = pipeline::steps::signing_keys(&work.steps).first() {
        let key = super::signing_keys::open(hub, id)
            .await
            .map_err(|e| Error::internal(format!("the sign step's key cannot be used: {e}")))?;
        work.sign_key = Some(key);
    }
    pipeline::run(&hub.storage, &OutputCache::new(hub), &work).await
}

/// The output cache over the `artifacts` table: the row decides which run's object a key
/// means.
pub struct OutputCache {
    hub: Hub,
}

impl OutputCache {
    pub fn new(hub: &Hub) -> OutputCache {
        OutputCache { hub: hub.clone() }
    }
}

fn output_of(row: db::artifact::ArtifactRow) -> Result<Output> {
    let mut extras: Map<String, Value> =
        serde_json::from_str(&row.extras).map_err(|e| Error::internal(format!("artifact extras: {e}")))?;
    let filename = match extras.remove("filename") {
        Some(Value::String(name)) => name,
        _ => "firmware.bin".to_owned(),
    };
    Ok(Output {
        key: row.object_key,
        filename,
        digests: Digests {
            size: u64::try_from(row.size).unwrap_or_default(),
            sha256: row.sha256,
            sha1: row.sha1,
            md5: row.md5,
        },
        extras,
    })
}

impl OutputCache {
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.hub.settings.job_lease_secs.max(1)).unwrap_or(30))
    }
}

impl pipeline::Cache for OutputCache {
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Output>>> {
        Box::pin(async move {
            let k = key.to_owned();
            let Some(row) = self.hub.db.run(move |conn| Ok(db::artifact::find(conn, &k)?)).await? else {
                return Ok(None);
            };
            // an output whose object is gone (or cut short) is made again
            if self.hub.storage.size(&row.object_key).await? != u64::try_from(row.size).ok() {
                let k = key.to_owned();
                self.hub.db.run(move |conn| Ok(db::artifact::delete(conn, &k)?)).await?;
                return Ok(None);
            }
            Ok(Some(output_of(row)?))
        })
    }

    fn record<'a>(&'a self, key: &'a str, output: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let mut extras = output.extras.clone();
            extras.insert("filename".into(), output.filename.clone().into());
            let row = db::artifact::ArtifactRow {
                cache_key: key.to_owned(),
                object_key: output.key.clone(),
                size: i64::try_from(output.digests.size).map_err(|_| Error::internal("output too large"))?,
                sha256: output.digests.sha256.clone(),
                sha1: output.digests.sha1.clone(),
                md5: output.digests.md5.clone(),
                extras: Value::Object(extras).to_string(),
                created_at: time::now(),
            };
            let kept = self.hub.db.run(move |conn| Ok(db::artifact::insert_or_keep(conn, &row)?)).await?;
            output_of(kept)
        })
    }

    fn claim<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<bool>> {
        let (key, holder, lease) = (key.to_owned(), holder.to_owned(), self.lease());
        Box::pin(self.hub.db.run(move |conn| {
            let now = time::now();
            Ok(db::output_claim::try_claim(conn, &key, &holder, now, now + lease)?)
        }))
    }

    fn renew<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>> {
        let (key, holder, lease) = (key.to_owned(), holder.to_owned(), self.lease());
        Box::pin(self.hub.db.run(move |conn| {
            if !db::output_claim::renew(conn, &key, &holder, time::now() + lease)? {
                tracing::warn!(cache_key = %key, "lost an output claim: an identical run may make it too");
            }
            Ok(())
        }))
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        Box::pin(self.hub.db.run(move |conn| Ok(db::output_claim::release(conn, &key, &holder)?)))
    }

    fn claim_lease(&self) -> Duration {
        Duration::from_secs(self.hub.settings.job_lease_secs.max(1))
    }
}

/// Records the deliverable on the session (`processing → created | success`), if the lease
/// is still ours.
pub async fn finish(hub: &Hub, task: &Task, d: Output) -> Result<()> {
    let task_c = task.clone();
    let limits = Limits::of(hub);
    hub.db
        .run(move |conn| {
            write_transaction_retrying(conn, |conn| {
                if !jobs::complete(conn, &task_c.lease)? {
                    return Ok(()); // another worker owns it now and will record its own result
                }
                let Some(s) = db::session::find(conn, &task_c.session_id)? else { return Ok(()) };
                let mut payload = d.extras.clone();
                payload.insert("size".into(), d.digests.size.into());
                payload.insert("sha256".into(), d.digests.sha256.clone().into());
                payload.insert("md5".into(), d.digests.md5.clone().into());
                payload.insert("sha1".into(), d.digests.sha1.clone().into());
                payload.insert("filename".into(), d.filename.clone().into());
                let details = Details {
                    message: Some(format!("the pipeline produced {} ({} bytes)", d.filename, d.digests.size)),
                    change: StateChange {
                        payload: Some(Some(Value::Object(payload).to_string())),
                        artifact_key: Some(Some(d.key.clone())),
                        artifact_sha256: Some(Some(d.digests.sha256.clone())),
                        ..StateChange::default()
                    },
                    ..Details::default()
                };
                let event = Event::PipelineDone { confirm: task_c.confirm };
                match engine::apply(conn, &limits, &s, event, time::now(), details) {
                    Ok(_) => Ok(()),
                    // e.g. the session was failed meanwhile: the output stays cached
                    Err(Error::Conflict { detail, .. }) => {
                        tracing::info!(session = %s.id, detail, "pipeline result not applied");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await?;
    tracing::info!(session = %task.session_id, "pipeline finished");
    Ok(())
}

/// Schedules another attempt with exponential back-off, or fails the session for good.
pub async fn attempt_failed(hub: &Hub, task: &Task, error: String) -> Result<()> {
    tracing::warn!(session = %task.session_id, attempt = task.lease.attempt, %error, "pipeline attempt failed");
    let task = task.clone();
    let limits = Limits::of(hub);
    let base = hub.settings.poll_interval_ms;
    hub.db
        .run(move |conn| {
            write_transaction_retrying(conn, |conn| {
                let now = time::now();
                let lease = &task.lease;
                if lease.attempt < lease.max_attempts {
                    if jobs::retry_later(conn, lease, base, &error)? {
                        let message = format!("attempt {} failed: {error}", lease.attempt);
                        engine::log_event(conn, &task.session_id, now, "attempt_failed", None, None, Some(message))?;
                    }
                    return Ok(());
                }
                if !jobs::complete(conn, lease)? {
                    return Ok(());
                }
                if let Some(s) = db::session::find(conn, &task.session_id)? {
                    let reason = format!("processing error: {error}");
                    if let Err(e) =
                        engine::apply(conn, &limits, &s, Event::PipelineFailed, now, Details::because(reason))
                    {
                        tracing::info!(session = %s.id, error = %e, "pipeline failure not applied");
                    }
                }
                Ok(())
            })
        })
        .await
}
