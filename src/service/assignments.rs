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

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub device: String,
    pub reason: String,
}

/// The most devices one assignment may reach (hawkBit's default quota).
pub const MAX_DEVICES_PER_ASSIGNMENT: usize = 5000;

pub async fn assign(hub: &Hub, actor: &Actor, firmware: String, input: AssignRequest) -> Result<AssignResult> {
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
                let mut result = AssignResult { sessions: Vec::new(), skipped: Vec::new() };
                for device in targets {
                    if device.model_id.as_ref().is_some_and(|m| *m != model.id) {
                        result.skipped.push(Skipped { device: device.device_id, reason: "the device is of another model".into() });
                        continue;
                    }
                    let s = assign_one(conn, &limits, &actor, &product, &procedure, &fw, &device, action_type, window, defaults)?;
                    result.sessions.push(HistoryEntry::of(&hub_c, s, actor.username.clone())?);
                }
                tracing::info!(
                    firmware = %fw.id, version = %fw.version, sessions = result.sessions.len(), skipped = result.skipped.len(),
                    "firmware assigned"
                );
                Ok(result)
            })
        })
        .await?;
    hub.jobs_ready.notify_waiters();
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
