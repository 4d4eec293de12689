//! Admins push firmware to devices (hawkBit's assignment): one session per device, started
//! at once so the deliverable is ready when the device polls. Admins can also withdraw a
//! session.
//!
//! **One open action per device.** When a device already has an open assignment, the new
//! one supersedes it: an old session the device cannot have seen yet (`queued`,
//! `processing`) ends at once (`fail`, "superseded by action N"). One it may be working on
//! (`created`) gets a cancel request, so the device sees `cancelAction` first and confirms it.
//! The new session waits behind it and is offered once the old one is over. This is
//! hawkBit's behaviour, so a client that handles one action per poll still sees them in order.
//!
//! **Large assignments run as a job.** One transaction for thousands of devices held the
//! database's write lock (SQLite) or the devices' rows (PostgreSQL) for seconds, and every
//! poll that needed them waited. An assignment naming more than `assign_sync_max` devices is
//! recorded (`db::assignment`) and answered at once with its id; a `Job::Assign` assigns the
//! devices [`CHUNK`] at a time, each chunk in its own transaction, and its progress is
//! `GET /api/v1/assignments/{id}`. The rules per device (one open action, the queue limit)
//! are the same code either way.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::jobs::{self, Job, Lease};
use super::session::engine::{self, Applied, Assignment, Details, Limits, NewSession};
use super::session::request::find_procedure_by_refs;
use super::session::views::{self, HistoryEntry, SessionView};
use super::{Actor, resolve_if};
use crate::db::session::Session;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::ddi::ActionType;
use crate::domain::rights::Action;
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// Device ids, or device identities (hawkBit controllerIds) of the firmware's product.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Every device of the product in this channel (id or handle).
    pub channel: Option<String>,
    /// Every device of the product whose attributes include all of these.
    pub attributes: Option<Map<String, Value>>,
    /// Defaults to the only delivery procedure, when there is exactly one.
    pub delivery_procedure: Option<String>,
    /// `forced` (default), `soft` or `download_only`.
    pub action_type: Option<String>,
    /// The device installs only inside this window (RFC 3339 times).
    pub maintenance_window: Option<Window>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize)]
pub struct AssignResult {
    pub sessions: Vec<HistoryEntry>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Skipped {
    pub device: String,
    pub reason: String,
}

/// The most devices one assignment may reach (hawkBit's default quota).
pub const MAX_DEVICES_PER_ASSIGNMENT: usize = 5000;

/// How many devices one transaction of an assignment job assigns: short enough that polls
/// (and the "last seen" writes of the devices being assigned) never wait long.
pub const CHUNK: usize = 25;

/// An assignment made within the request, or one that runs as a job (more devices than
/// `assign_sync_max`).
pub enum Assigned {
    Done(AssignResult),
    Started(AssignmentView),
}

/// A running (or finished) assignment job, as `GET /api/v1/assignments/{id}` shows it.
#[derive(Debug, Serialize)]
pub struct AssignmentView {
    pub id: String,
    pub firmware: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Devices named.
    pub total: i32,
    /// Devices dealt with so far (assigned or skipped).
    pub done: i32,
    /// Sessions made.
    pub assigned: i32,
    pub skipped: Vec<Skipped>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl AssignmentView {
    fn of(row: &db::assignment::Assignment) -> Result<AssignmentView> {
        Ok(AssignmentView {
            id: row.id.clone(),
            firmware: row.firmware_id.clone(),
            state: row.state.clone(),
            total: row.total,
            done: row.done,
            assigned: row.assigned,
            skipped: from_json(&row.skipped)?,
            error: row.error.clone(),
            created_at: time::to_rfc3339(&row.created_at),
            finished_at: row.finished_at.as_ref().map(time::to_rfc3339),
        })
    }
}

/// What an assignment job assigns, besides the firmware and the devices.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    procedure_id: String,
    action_type: String,
    window: Option<(NaiveDateTime, NaiveDateTime)>,
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("an assignment row: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))
}

pub async fn assign(hub: &Hub, actor: &Actor, firmware: String, input: AssignRequest) -> Result<Assigned> {
    let action_type: ActionType = input.action_type.as_deref().unwrap_or("forced").parse()?;
    let window = input
        .maintenance_window
        .as_ref()
        .map(|w| -> Result<(NaiveDateTime, NaiveDateTime)> {
            let start = time::parse_rfc3339("maintenance_window.start", &w.start)?;
            let end = time::parse_rfc3339("maintenance_window.end", &w.end)?;
            if end <= start {
                return Err(Error::invalid("maintenance_window: end must be after start"));
            }
            if end <= time::now() {
                return Err(Error::invalid("maintenance_window: it has already ended"));
            }
            Ok((start, end))
        })
        .transpose()?;
    if input.devices.is_empty() && input.channel.is_none() && input.attributes.is_none() {
        return Err(Error::invalid("name the devices: devices, channel or attributes"));
    }
    let actor = actor.clone();
    let hub_c = hub.clone();
    let limits = Limits::of(hub);
    let defaults = hub.settings.timeouts;
    let sync_max = hub.settings.assign_sync_max;
    let attempts = hub.settings.job_max_attempts;
    let result = hub
        .db
        .run(move |conn| {
            write_transaction_retrying(conn, |conn| {
                let fw = super::firmware::find_released(conn, &actor, &firmware)?;
                let model = db::model::find(conn, &fw.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
                actor.require_in(Action::Write, &model.product_id)?;
                let product = db::product::find(conn, &model.product_id)?.ok_or_else(|| Error::internal("model without product"))?;
                let procedure = find_procedure_by_refs(conn, input.delivery_procedure.as_deref(), "delivery_procedure", None)?;
                let targets = targets(conn, &product.id, &input)?;
                if targets.len() > sync_max {
                    let plan = Plan { procedure_id: procedure.id.clone(), action_type: action_type.to_string(), window };
                    return start_job(conn, &actor, &fw, &product, &plan, &targets, attempts).map(Assigned::Started);
                }
                let mut result = AssignResult { sessions: Vec::new(), skipped: Vec::new() };
                for device in targets {
                    if device.model_id.as_ref().is_some_and(|m| *m != model.id) {
                        result.skipped.push(other_model(&device));
                        continue;
                    }
                    let s = assign_one(conn, &limits, &actor, &product, &procedure, &fw, &device, action_type, window, defaults)?;
                    result.sessions.push(HistoryEntry::of(&hub_c, s, actor.username.clone())?);
                }
                tracing::info!(
                    firmware = %fw.id, version = %fw.version, sessions = result.sessions.len(), skipped = result.skipped.len(),
                    "firmware assigned"
                );
                Ok(Assigned::Done(result))
            })
        })
        .await?;
    hub.jobs_ready.notify_waiters();
    Ok(result)
}

fn other_model(device: &db::device::Device) -> Skipped {
    Skipped { device: device.device_id.clone(), reason: "the device is of another model".into() }
}

/// Records an assignment and the job that carries it out.
fn start_job(
    conn: &mut AnyConnection,
    actor: &Actor,
    fw: &db::firmware::Firmware,
    product: &db::product::Product,
    plan: &Plan,
    targets: &[db::device::Device],
    attempts: u32,
) -> Result<AssignmentView> {
    let now = time::now();
    let devices: Vec<&str> = targets.iter().map(|d| d.id.as_str()).collect();
    let row = db::assignment::Assignment {
        id: uuid::Uuid::now_v7().to_string(),
        firmware_id: fw.id.clone(),
        product_id: product.id.clone(),
        creator_id: actor.user_id.clone(),
        plan: to_json(plan)?,
        devices: to_json(&devices)?,
        total: i32::try_from(devices.len()).unwrap_or(i32::MAX),
        done: 0,
        assigned: 0,
        skipped: "[]".into(),
        state: "running".into(),
        error: None,
        created_at: now,
        finished_at: None,
    };
    db::assignment::insert(conn, &row)?;
    jobs::enqueue(conn, &Job::Assign { assignment: row.id.clone() }, now, attempts)?;
    tracing::info!(firmware = %fw.id, version = %fw.version, devices = devices.len(), assignment = %row.id, "assignment started");
    AssignmentView::of(&row)
}

/// An assignment job's progress, to whoever may see its product.
pub async fn progress(hub: &Hub, actor: &Actor, id: String) -> Result<AssignmentView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let missing = || Error::not_found(format!("assignment {id:?}"));
            let row = db::assignment::find(conn, &id)?.ok_or_else(missing)?;
            if !actor.sees(&row.product_id) {
                return Err(missing());
            }
            actor.require_in(Action::Read, &row.product_id)?;
            AssignmentView::of(&row)
        })
        .await
}

/// A claimed assignment job.
pub struct Task {
    pub lease: Lease,
    pub assignment: String,
}

/// Carries out an assignment job, [`CHUNK`] devices per transaction, letting other work in
/// between. Returns when it is done, failed, or another worker took it over.
pub async fn run(hub: &Hub, task: &Task) {
    let limits = Limits::of(hub);
    let defaults = hub.settings.timeouts;
    loop {
        let (lease, id) = (task.lease.clone(), task.assignment.clone());
        let step = hub
            .db
            .run(move |conn| {
                write_transaction_retrying(conn, |conn| assign_chunk(conn, &limits, defaults, &lease, &id))
            })
            .await;
        hub.jobs_ready.notify_waiters();
        match step {
            Ok(true) => tokio::task::yield_now().await,
            Ok(false) => return,
            Err(e) if e.code() == "concurrent_update" => {
                tracing::warn!(assignment = %task.assignment, "another worker carries the assignment on");
                return;
            }
            Err(e) => {
                tracing::warn!(assignment = %task.assignment, error = %e, "an assignment failed");
                let (lease, id, error) = (task.lease.clone(), task.assignment.clone(), e.to_string());
                let recorded = hub
                    .db
                    .run(move |conn| write_transaction_retrying(conn, |conn| fail(conn, &lease, &id, &error)))
                    .await;
                if let Err(e) = recorded {
                    tracing::warn!(assignment = %task.assignment, error = %e, "recording an assignment's failure failed");
                }
                return;
            }
        }
    }
}

/// Assigns the next [`CHUNK`] devices. `false`: nothing is left to do.
fn assign_chunk(
    conn: &mut AnyConnection,
    limits: &Limits,
    defaults: crate::domain::procedure::Timeouts,
    lease: &Lease,
    id: &str,
) -> Result<bool> {
    let Some(row) = db::assignment::find(conn, id)? else {
        jobs::complete(conn, lease)?;
        return Ok(false);
    };
    if row.state != "running" {
        jobs::complete(conn, lease)?;
        return Ok(false);
    }
    let plan: Plan = from_json(&row.plan)?;
    let devices: Vec<String> = from_json(&row.devices)?;
    let mut skipped: Vec<Skipped> = from_json(&row.skipped)?;
    let gone = |what: &str| Error::conflict("assignment_failed", format!("the assignment's {what} was deleted"));
    let fw = db::firmware::find(conn, &row.firmware_id)?.ok_or_else(|| gone("firmware"))?;
    let product = db::product::find(conn, &row.product_id)?.ok_or_else(|| gone("product"))?;
    let procedure =
        db::delivery::procedures::find(conn, &plan.procedure_id)?.ok_or_else(|| gone("delivery procedure"))?;
    let creator = db::user::find(conn, &row.creator_id)?.ok_or_else(|| gone("creator"))?;
    // who assigned: rights were checked when the assignment was made
    let actor = Actor { user_id: creator.id.clone(), username: creator.username.clone(), grants: Vec::new() };
    let action_type: ActionType = plan.action_type.parse()?;
    let from = usize::try_from(row.done).unwrap_or(0).min(devices.len());
    let upto = (from + CHUNK).min(devices.len());
    let mut assigned = row.assigned;
    for device_id in &devices[from..upto] {
        match db::device::find(conn, device_id)? {
            None => skipped.push(Skipped { device: device_id.clone(), reason: "the device was deleted".into() }),
            Some(device) if device.model_id.as_ref().is_some_and(|m| *m != fw.model_id) => {
                skipped.push(other_model(&device))
            }
            Some(device) => {
                assign_one(
                    conn,
                    limits,
                    &actor,
                    &product,
                    &procedure,
                    &fw,
                    &device,
                    action_type,
                    plan.window,
                    defaults,
                )?;
                assigned += 1;
            }
        }
    }
    let finished = upto == devices.len();
    let now = time::now();
    let progress = db::assignment::Progress {
        done: i32::try_from(upto).unwrap_or(i32::MAX),
        assigned,
        skipped: to_json(&skipped)?,
        state: if finished { "done" } else { "running" }.into(),
        error: None,
        finished_at: finished.then_some(now),
    };
    if !db::assignment::advance(conn, id, row.done, &progress)? {
        return Err(Error::conflict("concurrent_update", "the assignment was carried on by another worker"));
    }
    if finished {
        tracing::info!(assignment = %id, firmware = %fw.id, sessions = assigned, skipped = skipped.len(), "firmware assigned");
        jobs::complete(conn, lease)?;
    }
    Ok(!finished)
}

fn fail(conn: &mut AnyConnection, lease: &Lease, id: &str, error: &str) -> Result<()> {
    if let Some(row) = db::assignment::find(conn, id)? {
        let progress = db::assignment::Progress {
            done: row.done,
            assigned: row.assigned,
            skipped: row.skipped.clone(),
            state: "failed".into(),
            error: Some(error.to_owned()),
            finished_at: Some(time::now()),
        };
        db::assignment::advance(conn, id, row.done, &progress)?;
    }
    jobs::complete(conn, lease)?;
    Ok(())
}

/// The devices an assignment names: the union of the listed ones, a channel's and the
/// attribute matches, within the firmware's product.
fn targets(conn: &mut AnyConnection, product_id: &str, input: &AssignRequest) -> Result<Vec<db::device::Device>> {
    let mut found: BTreeMap<String, db::device::Device> = BTreeMap::new();
    for raw in &input.devices {
        let device = match uuid::Uuid::parse_str(raw) {
            Ok(id) => db::device::find(conn, &id.to_string())?.filter(|d| d.product_id == product_id),
            Err(_) => db::device::find_by_device_id(conn, product_id, raw)?,
        }
        .ok_or_else(|| {
            Error::unprocessable("unknown_reference", format!("devices: no device {raw:?} in this product"))
        })?;
        found.insert(device.id.clone(), device);
    }
    if let Some(c) = &input.channel {
        // a channel of another product is as unknown here as one that does not exist
        let channel =
            resolve_if(conn, "channel", "channel", c, db::channel::find_by_ref, |c| c.product_id == product_id)?;
        for d in db::device::in_product(conn, product_id, Some(&channel.id))? {
            found.insert(d.id.clone(), d);
        }
    }
    if let Some(wanted) = &input.attributes {
        for d in db::device::in_product(conn, product_id, None)? {
            let have: Map<String, Value> = serde_json::from_str(&d.attributes).unwrap_or_default();
            if wanted.iter().all(|(k, v)| have.get(k) == Some(v)) {
                found.insert(d.id.clone(), d);
            }
        }
    }
    if found.len() > MAX_DEVICES_PER_ASSIGNMENT {
        return Err(Error::invalid(format!("at most {MAX_DEVICES_PER_ASSIGNMENT} devices per assignment")));
    }
    Ok(found.into_values().collect())
}

#[expect(clippy::too_many_arguments, reason = "one assignment needs each of these")]
fn assign_one(
    conn: &mut AnyConnection,
    limits: &Limits,
    actor: &Actor,
    product: &db::product::Product,
    procedure: &db::delivery::DeliveryProcedure,
    fw: &db::firmware::Firmware,
    device: &db::device::Device,
    action_type: ActionType,
    window: Option<(NaiveDateTime, NaiveDateTime)>,
    defaults: crate::domain::procedure::Timeouts,
) -> Result<Session> {
    let now = time::now();
    let session = engine::insert_session(
        conn,
        NewSession {
            id: uuid::Uuid::new_v4().to_string(),
            state: State::Ready,
            creator_id: actor.user_id.clone(),
            product_id: product.id.clone(),
            model_id: fw.model_id.clone(),
            channel_id: device.channel_id.clone(),
            device_id: Some(device.id.clone()),
            procedure,
            // the device reports the result (`closed`): always a confirm step
            confirm: true,
            defaults,
            current_firmware_id: device.installed_firmware_id.clone(),
            current_version: device.installed_version.clone(),
            target_firmware_id: Some(fw.id.clone()),
            assignment: Some(Assignment {
                action_type,
                window,
                consent_required: product.ddi_confirmation_required && device.auto_confirm.is_none(),
            }),
            now,
        },
    )?;
    supersede(conn, limits, device, &session)?;
    let message = format!("{actor} assigned firmware {} ({action_type})", fw.version, actor = actor.username);
    engine::log_event(conn, &session.id, now, "assigned", None, Some(State::Ready), Some(message))?;
    let changes = db::device::DeviceChanges {
        model_id: Some(Some(fw.model_id.clone())),
        last_session_id: Some(Some(session.id.clone())),
        updated_at: Some(now),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    match engine::apply(conn, limits, &session, Event::Start, now, Details::because("started by the assignment"))? {
        Applied::Moved(s) => Ok(s),
        _ => Err(Error::internal("a new assignment could not start")),
    }
}

/// Applies the one-open-action rule (see the module comment) to `device`'s older sessions.
fn supersede(conn: &mut AnyConnection, limits: &Limits, device: &db::device::Device, new: &Session) -> Result<()> {
    for old in db::session::open_assignments(conn, &device.id)? {
        if old.id != new.id {
            supersede_one(conn, limits, old, new.number)?;
        }
    }
    Ok(())
}

/// A worker may move the old session (`processing` → `created`) while we decide; then the
/// guarded transition is lost, and the rule is applied again to what the session is now.
fn supersede_one(conn: &mut AnyConnection, limits: &Limits, mut old: Session, by: i64) -> Result<()> {
    let now = time::now();
    for _ in 0..3 {
        match engine::state_of(&old)? {
            State::Created => {
                let message = format!("superseded by action {by}: the device is asked to cancel");
                engine::request_cancel(conn, &old, now, message)?;
                return Ok(());
            }
            State::Queued | State::Processing => {
                let reason = format!("superseded by action {by}");
                match engine::apply(conn, limits, &old, Event::Cancel, now, Details::because(reason))? {
                    Applied::Lost => old = engine::reload(conn, &old)?,
                    _ => return Ok(()),
                }
            }
            _ => return Ok(()), // already over
        }
    }
    Err(Error::conflict("concurrent_update", "an older assignment of the device kept changing; try again"))
}

/// Withdraws a session. One a device cannot have started on ends at once; an assigned one
/// the device may be working on gets a cancel request the device confirms (hawkBit cancel);
/// a device-requested one ends at once (its protocol has no cancel). Racing a worker, it
/// decides again on what the session has become.
pub async fn cancel(hub: &Hub, actor: &Actor, id: String) -> Result<SessionView> {
    let actor = actor.clone();
    let hub_c = hub.clone();
    let limits = Limits::of(hub);
    let view = hub
        .db
        .run(move |conn| {
            let (s, creator) = cancel_in(conn, &limits, &actor, &id)?;
            views::view(&hub_c, s, creator)
        })
        .await?;
    // a DMF thing's CANCEL_DOWNLOAD waits in the outbox
    hub.jobs_ready.notify_waiters();
    Ok(view)
}

fn cancel_in(conn: &mut AnyConnection, limits: &Limits, actor: &Actor, id: &str) -> Result<(Session, String)> {
    for _ in 0..5 {
        let outcome = write_transaction_retrying(conn, |conn| {
            let now = time::now();
            let (s, creator) = engine::load_live(conn, id, now)?;
            super::session::request::require_in_product(actor, &s, Action::Write)?;
            let by = format!("canceled by {}", actor.username);
            if engine::state_of(&s)? == State::Created && s.action_type.is_some() {
                engine::request_cancel(conn, &s, now, by)?;
                return Ok(Some((engine::reload(conn, &s)?, creator)));
            }
            match engine::apply(conn, limits, &s, Event::Cancel, now, Details::because(by))? {
                Applied::Moved(s) | Applied::Repeated(s) => Ok(Some((s, creator))),
                Applied::Expired => Err(Error::not_found(format!("firmware-update session {id:?}"))),
                Applied::Lost => Ok(None),
            }
        })?;
        if let Some(done) = outcome {
            return Ok(done);
        }
    }
    Err(Error::conflict("concurrent_update", "the session kept changing; try again"))
}
