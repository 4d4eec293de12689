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

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sessions::{self, Applied, Assignment, Details, HistoryEntry, JobSettings, NewSession, SessionView};
use super::{Actor, resolve_if};
use crate::db::session::Session;
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::ddi::ActionType;
use crate::domain::rights::Action;
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::state::AppState;
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

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub device: String,
    pub reason: String,
}

/// The most devices one assignment may reach (hawkBit's default quota).
pub const MAX_DEVICES_PER_ASSIGNMENT: usize = 5000;

pub async fn assign(state: &AppState, actor: &Actor, firmware: String, input: AssignRequest) -> Result<AssignResult> {
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
    let st = state.clone();
    let jobs = JobSettings::of(state);
    let defaults = state.settings.timeouts;
    let result = state
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let fw = super::firmware::find_released(conn, &actor, &firmware)?;
                let model = db::model::find(conn, &fw.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
                actor.require_in(Action::Write, &model.product_id)?;
                let product = db::product::find(conn, &model.product_id)?.ok_or_else(|| Error::internal("model without product"))?;
                let procedure = sessions::find_procedure_by_refs(conn, input.delivery_procedure.as_deref(), "delivery_procedure", None)?;
                let targets = targets(conn, &product.id, &input)?;
                let mut result = AssignResult { sessions: Vec::new(), skipped: Vec::new() };
                for device in targets {
                    if device.model_id.as_ref().is_some_and(|m| *m != model.id) {
                        result.skipped.push(Skipped { device: device.device_id, reason: "the device is of another model".into() });
                        continue;
                    }
                    let s = assign_one(conn, &jobs, &actor, &product, &procedure, &fw, &device, action_type, window, defaults)?;
                    result.sessions.push(HistoryEntry::of(&st, s, actor.username.clone())?);
                }
                tracing::info!(
                    firmware = %fw.id, version = %fw.version, sessions = result.sessions.len(), skipped = result.skipped.len(),
                    "firmware assigned"
                );
                Ok(result)
            })
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(result)
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
    jobs: &JobSettings,
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
    let session = sessions::insert_session(
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
    supersede(conn, jobs, device, &session)?;
    let message = format!("{actor} assigned firmware {} ({action_type})", fw.version, actor = actor.username);
    sessions::log_event(conn, &session.id, now, "assigned", None, Some(State::Ready), Some(message))?;
    let changes = db::device::DeviceChanges {
        model_id: Some(Some(fw.model_id.clone())),
        last_session_id: Some(Some(session.id.clone())),
        updated_at: Some(now),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    match sessions::apply(conn, jobs, &session, Event::Start, now, Details::because("started by the assignment"))? {
        Applied::Moved(s) => Ok(s),
        _ => Err(Error::internal("a new assignment could not start")),
    }
}

/// Applies the one-open-action rule (see the module comment) to `device`'s older sessions.
fn supersede(conn: &mut AnyConnection, jobs: &JobSettings, device: &db::device::Device, new: &Session) -> Result<()> {
    for old in db::session::open_assignments(conn, &device.id)? {
        if old.id != new.id {
            supersede_one(conn, jobs, old, new.number)?;
        }
    }
    Ok(())
}

/// A worker may move the old session (`processing` → `created`) while we decide; then the
/// guarded transition is lost, and the rule is applied again to what the session is now.
fn supersede_one(conn: &mut AnyConnection, jobs: &JobSettings, mut old: Session, by: i64) -> Result<()> {
    let now = time::now();
    for _ in 0..3 {
        match old.state.parse::<State>()? {
            State::Created => {
                if old.cancel_requested_at.is_none() {
                    db::session::set_cancel_requested(conn, &old.id, Some(now))?;
                    let message = format!("superseded by action {by}: the device is asked to cancel");
                    sessions::log_event(conn, &old.id, now, "cancel_requested", None, None, Some(message))?;
                }
                return Ok(());
            }
            State::Queued | State::Processing => {
                let reason = format!("superseded by action {by}");
                match sessions::apply(conn, jobs, &old, Event::Cancel, now, Details::because(reason))? {
                    Applied::Lost => match db::session::find(conn, &old.id)? {
                        Some(fresh) => old = fresh,
                        None => return Ok(()),
                    },
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
/// a device-requested one ends at once (its protocol has no cancel).
pub async fn cancel(state: &AppState, actor: &Actor, id: String) -> Result<SessionView> {
    let actor = actor.clone();
    let st = state.clone();
    let jobs = JobSettings::of(state);
    state
        .db
        .run(move |conn| {
            let (s, creator) = write_transaction(conn, |conn| {
                let now = time::now();
                let (s, creator) = sessions::load_live(conn, &id, now)?;
                actor.require_in(Action::Write, &s.product_id)?;
                let state = s.state.parse::<State>()?;
                let by = format!("canceled by {}", actor.username);
                if state == State::Created && s.action_type.is_some() {
                    if s.cancel_requested_at.is_none() {
                        db::session::set_cancel_requested(conn, &s.id, Some(now))?;
                        sessions::log_event(conn, &s.id, now, "cancel_requested", None, None, Some(by))?;
                    }
                    let s = db::session::find(conn, &s.id)?.ok_or_else(|| Error::not_found("session"))?;
                    return Ok((s, creator));
                }
                match sessions::apply(conn, &jobs, &s, Event::Cancel, now, Details::because(by))? {
                    Applied::Moved(s) | Applied::Repeated(s) => Ok((s, creator)),
                    _ => Err(Error::conflict("concurrent_update", "the session changed; try again")),
                }
            })?;
            sessions::view(&st, s, creator)
        })
        .await
}
