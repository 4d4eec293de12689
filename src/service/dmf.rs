//! hawkBit DMF, the use-cases of the AMQP door (`crate::amqp`): what each inbound message
//! does (over the door-neutral action model `service::action`, the session engine and the
//! twin, exactly as DDI does), and what the server tells a thing. Outbound messages go
//! through the outbox: a transition records a [`Notice`] for door `dmf` in its own
//! transaction; the door's courier turns it into a message with [`outbound`] after commit,
//! reading the action as it is *then* (so a stale notice sends nothing, a rotated token goes
//! out with the next message, and a redelivered notice says the same again).

use chrono::NaiveDateTime;
use serde_json::json;

use super::action::{self, Offer, Report, Target};
use super::outbox::{self, Notice};
use super::session::engine::Limits;
use crate::db::session::Session;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::ddi::{Handling, cancel_feedback, deployment_feedback};
use crate::domain::dmf::{
    self, ActionStatusUpdate, Artifact, CreateThing, DownloadRequest, Hashes, Inbound, Message, SoftwareModule,
    StatusEffect,
};
use crate::domain::ids::ObjectRef;
use crate::domain::session::State;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

/// The outbox door name of DMF.
pub const DOOR: &str = "dmf";

/// Notice topics: tell the thing about its current action (the courier decides whether
/// that is `DOWNLOAD_AND_INSTALL`, `DOWNLOAD`, `CONFIRM` or `CANCEL_DOWNLOAD`).
pub const ACTION: &str = "ACTION";
pub const THING_DELETED: &str = "THING_DELETED";
pub const REQUEST_ATTRIBUTES_UPDATE: &str = "REQUEST_ATTRIBUTES_UPDATE";

/// The marker of a status message's correlation id in the history; a redelivered status
/// carrying the same id is recognised by it and not applied twice.
fn correlation_marker(id: &str) -> String {
    format!("Update Server: DMF message correlation-id {id}")
}

/// A message for the broker, in the door's words.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The thing's reply exchange; published with routing key `""`.
    pub exchange: String,
    /// Headers: `type`, `tenant`, `thingId`, `topic` (what applies).
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub correlation_id: Option<String>,
    pub body: Vec<u8>,
}

/// Whether an error is the infrastructure's (the message is requeued and tried again later)
/// rather than the message's (it goes to the dead-letter queue).
pub fn is_infrastructure(e: &Error) -> bool {
    matches!(e, Error::Unavailable(_) | Error::StorageFull(_) | Error::Contention(_) | Error::Internal(_))
}

// ---- which devices are DMF things --------------------------------------------------------------

/// Records a notice for door `dmf` if `device` is a DMF thing.
fn notify(
    conn: &mut AnyConnection,
    device: &db::device::Device,
    session: Option<&str>,
    topic: &str,
    at: NaiveDateTime,
) -> Result<()> {
    if device.dmf_reply_to.is_none() {
        return Ok(());
    }
    let notice = Notice {
        door: DOOR.to_owned(),
        session: session.map(str::to_owned),
        topic: topic.to_owned(),
        body: json!({ "device": device.id }),
    };
    outbox::record(conn, notice, at)
}

/// The engine's hook, in a transition's transaction: an assigned session of a DMF thing
/// became deliverable (tell the thing), or ended (tell the thing its next action, if any).
pub fn on_transition(conn: &mut AnyConnection, s: &Session, to: State, at: NaiveDateTime) -> Result<()> {
    let (Some(device_id), Some(_)) = (&s.device_id, &s.action_type) else { return Ok(()) };
    if to != State::Created && !to.is_finished() {
        return Ok(());
    }
    let Some(device) = db::device::find(conn, device_id)? else { return Ok(()) };
    let session = (to == State::Created).then_some(s.id.as_str());
    notify(conn, &device, session, ACTION, at)
}

/// The engine's hook when a cancel is requested: the thing gets `CANCEL_DOWNLOAD`.
pub fn on_cancel_requested(conn: &mut AnyConnection, s: &Session, at: NaiveDateTime) -> Result<()> {
    let Some(device_id) = &s.device_id else { return Ok(()) };
    let Some(device) = db::device::find(conn, device_id)? else { return Ok(()) };
    notify(conn, &device, Some(&s.id), ACTION, at)
}

/// Deletes a device (its history stays); a DMF thing is told `THING_DELETED`.
pub fn delete_device(conn: &mut AnyConnection, device: &db::device::Device) -> Result<()> {
    if let Some(reply_to) = &device.dmf_reply_to {
        let tenant = db::product::find(conn, &device.product_id)?.map(|p| p.tid).unwrap_or_default();
        let notice = Notice {
            door: DOOR.to_owned(),
            session: None,
            topic: THING_DELETED.to_owned(),
            body: json!({ "tenant": tenant, "thing": device.device_id, "reply_to": reply_to }),
        };
        outbox::record(conn, notice, time::now())?;
    }
    db::device::delete(conn, &device.id)?;
    Ok(())
}

/// Asks a device for its attributes: the DDI poll shows `configData`, a DMF thing gets
/// `REQUEST_ATTRIBUTES_UPDATE`.
pub fn request_attributes(conn: &mut AnyConnection, device: &db::device::Device) -> Result<()> {
    super::twin::request_attributes(conn, device)?;
    notify(conn, device, None, REQUEST_ATTRIBUTES_UPDATE, time::now())
}

// ---- inbound --------------------------------------------------------------------------------

/// Applies one inbound message in one transaction; the door acknowledges it only after
/// this returned `Ok`. A `PING` is answered with the returned message (nothing is stored).
pub async fn handle(hub: &Hub, message: Message) -> Result<Option<Outbound>> {
    if message.kind == Inbound::Ping {
        return Ok(Some(ping_response(hub, &message)));
    }
    let hub_c = hub.clone();
    let limits = Limits::of(hub);
    hub.db.run(move |conn| write_transaction_retrying(conn, |conn| apply(conn, &hub_c, &limits, &message))).await?;
    hub.jobs_ready.notify_waiters();
    Ok(None)
}

fn ping_response(hub: &Hub, m: &Message) -> Outbound {
    let mut headers = vec![("type", "PING_RESPONSE".to_owned())];
    if let Some(t) = &m.tenant {
        headers.push(("tenant", t.clone()));
    }
    Outbound {
        exchange: m.reply_to.clone().unwrap_or_else(|| hub.settings.dmf.reply_exchange.clone()),
        headers,
        content_type: "text/plain",
        correlation_id: m.correlation_id.clone(),
        body: time::now().and_utc().timestamp_millis().to_string().into_bytes(),
    }
}

fn product(conn: &mut AnyConnection, hub: &Hub, tenant: Option<&str>) -> Result<db::product::Product> {
    let tenant = tenant.unwrap_or("DEFAULT");
    action::product_of_tenant(conn, hub.settings.ddi_default_product.as_deref(), tenant)?
        .ok_or_else(|| Error::not_found(format!("tenant {tenant:?}")))
}

fn target(conn: &mut AnyConnection, hub: &Hub, tenant: Option<&str>, thing: &str) -> Result<Target> {
    let product = product(conn, hub, tenant)?;
    let device = db::device::find_by_device_id(conn, &product.id, thing)?
        .ok_or_else(|| Error::not_found(format!("thing {thing:?}")))?;
    Ok(Target { product, device })
}

fn apply(conn: &mut AnyConnection, hub: &Hub, limits: &Limits, m: &Message) -> Result<()> {
    let tenant = m.tenant.as_deref();
    match &m.kind {
        Inbound::Ping => Ok(()),
        Inbound::ThingCreated { thing, create } => {
            thing_created(conn, hub, tenant, thing, m.reply_to.as_deref(), create)
        }
        Inbound::ThingRemoved { thing } => {
            let t = target(conn, hub, tenant, thing)?;
            delete_device(conn, &t.device)
        }
        Inbound::UpdateAttributes { thing, update } => {
            let t = target(conn, hub, tenant, thing)?;
            action::update_attributes(conn, &t, update.mode, &update.attributes)
        }
        Inbound::AutoConfirm { thing, body } => {
            let t = target(conn, hub, tenant, thing)?;
            if body.enabled {
                let remark =
                    body.remark.clone().or_else(|| Some("Activated using Device Management Federation API.".into()));
                match action::activate_auto_confirm(conn, &t, body.initiator.clone(), remark) {
                    // already on: the message changes nothing (it may be a redelivery)
                    Ok(()) | Err(Error::Conflict { code: "auto_confirm_active", .. }) => {}
                    Err(e) => return Err(e),
                }
                notify(conn, &t.device, None, ACTION, time::now())
            } else {
                action::deactivate_auto_confirm(conn, &t)
            }
        }
        Inbound::ActionStatus(update) => action_status(conn, hub, limits, tenant, m.correlation_id.as_deref(), update),
    }
}

/// Registers (or updates) a thing, remembers its reply exchange, and tells it its current
/// action at once, as hawkBit does.
fn thing_created(
    conn: &mut AnyConnection,
    hub: &Hub,
    tenant: Option<&str>,
    thing: &str,
    reply_to: Option<&str>,
    create: &CreateThing,
) -> Result<()> {
    let product = product(conn, hub, tenant)?;
    let now = time::now();
    let reply_to = reply_to.unwrap_or(&hub.settings.dmf.reply_exchange).to_owned();
    let device = match db::device::find_by_device_id(conn, &product.id, thing)? {
        Some(d) => d,
        None => {
            let (mut row, token) = super::devices::new_device(product.id.clone(), thing.to_owned(), now);
            row.target_token_sealed = Some(super::devices::seal_target_token(hub, &row.id, &token));
            db::device::insert(conn, &row)?;
            tracing::info!(product = %product.tid, thing, "registered a DMF thing");
            row
        }
    };
    let model_id = match create.model.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(raw) => {
            let model = ObjectRef::parse("type", raw)
                .ok()
                .map(|r| db::model::find_by_ref(conn, &r))
                .transpose()?
                .flatten()
                .filter(|m| m.product_id == product.id);
            match model {
                Some(m) => Some(Some(m.id)),
                None => {
                    tracing::info!(thing, model = raw, "THING_CREATED names an unknown type (model); ignored");
                    None
                }
            }
        }
    };
    if let Some(name) = &create.name {
        crate::domain::ids::validate_name("name", name)?;
    }
    let changes = db::device::DeviceChanges {
        name: create.name.clone().map(Some),
        model_id,
        dmf_reply_to: Some(Some(reply_to)),
        last_seen: Some(Some(now)),
        updated_at: Some(now),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    let device = db::device::find(conn, &device.id)?.ok_or_else(|| Error::internal("device vanished"))?;
    if let Some(update) = &create.attribute_update {
        let t = Target { product: product.clone(), device: device.clone() };
        action::update_attributes(conn, &t, update.mode, &update.attributes)?;
    }
    notify(conn, &device, None, ACTION, now)
}

/// Whether the history already holds this correlation id (a redelivered status).
fn seen_before(conn: &mut AnyConnection, s: &Session, correlation_id: Option<&str>) -> Result<bool> {
    let Some(id) = correlation_id else { return Ok(false) };
    let marker = correlation_marker(id);
    let events = db::session::events(conn, &s.id, action::MAX_FEEDBACK_PER_ACTION + 10)?;
    Ok(events.iter().any(|e| e.message.as_deref().is_some_and(|m| m.lines().any(|l| l == marker))))
}

/// `UPDATE_ACTION_STATUS`: every status mapped as the DDI feedback it stands for.
fn action_status(
    conn: &mut AnyConnection,
    hub: &Hub,
    limits: &Limits,
    tenant: Option<&str>,
    correlation_id: Option<&str>,
    update: &ActionStatusUpdate,
) -> Result<()> {
    let product = product(conn, hub, tenant)?;
    let number = update.action_id;
    let s = db::session::find_by_number(conn, &product.id, number)?
        .filter(|s| s.action_type.is_some())
        .ok_or_else(|| Error::not_found(format!("action {number}")))?;
    let device_id = s.device_id.clone().ok_or_else(|| Error::not_found(format!("the device of action {number}")))?;
    let device = db::device::find(conn, &device_id)?
        .ok_or_else(|| Error::not_found(format!("the device of action {number}")))?;
    let target = Target { product, device };
    if seen_before(conn, &s, correlation_id)? {
        tracing::info!(
            action = number,
            correlation_id,
            "a redelivered DMF status was recognised and not applied again"
        );
        return Ok(());
    }
    let s = action::refreshed(conn, s)?;
    let status = update.action_status.as_str();
    let mut messages = update.message.clone().unwrap_or_default();
    if let Some(id) = correlation_id {
        messages.push(correlation_marker(id));
    }
    let report = Report { messages, code: update.code };
    report.check()?;
    if !action::is_active(&s)? {
        // out of order or late (e.g. RUNNING after FINISHED): kept in the history, changes nothing
        let message = report.message(&format!("ignored {status}: action {number} is closed"));
        return super::session::engine::note(conn, &s.id, &format!("{}ignored", action::SERVER_EVENT), message);
    }
    match dmf::status_effect(update.action_status) {
        StatusEffect::Deployment(execution, finished) => {
            if action::waits_for_consent(&s) {
                return Err(Error::invalid(format!("{status}: action {number} waits for consent (CONFIRMED/DENIED)")));
            }
            let effect = deployment_feedback(action::action_type(&s), execution, finished);
            action::deployment_report(conn, limits, &target, &s, effect, &report)?;
        }
        StatusEffect::Cancel(execution, finished) => {
            if s.cancel_requested_at.is_none() {
                return Err(Error::invalid(format!("{status}: action {number} is not being canceled")));
            }
            let effect = cancel_feedback(execution, finished);
            action::cancel_report(conn, limits, &s, effect, &report)?;
            if matches!(effect, crate::domain::ddi::CancelEffect::Refused(_)) {
                // the update goes on: the thing gets the action again
                notify(conn, &target.device, Some(&s.id), ACTION, time::now())?;
            }
        }
        StatusEffect::Retrieved => {
            action::record_device_event(conn, &s, status, report.message("Target retrieved the action"))?;
        }
        StatusEffect::Consent(confirmed) => {
            action::consent(conn, &s, confirmed, &report)?;
            if confirmed {
                notify(conn, &target.device, Some(&s.id), ACTION, time::now())?;
            }
        }
    }
    let after = super::session::engine::reload(conn, &s)?;
    if super::session::engine::state_of(&after)? == State::Success {
        // hawkBit asks for fresh attributes after an update (and a finished download-only action)
        notify(conn, &target.device, None, REQUEST_ATTRIBUTES_UPDATE, time::now())?;
    }
    Ok(())
}

// ---- outbound -------------------------------------------------------------------------------

/// The message a notice stands for now, or `None` when there is nothing (left) to say.
pub async fn outbound(hub: &Hub, id: &str, notice: &Notice) -> Result<Option<Outbound>> {
    let (hub_c, id, notice) = (hub.clone(), id.to_owned(), notice.clone());
    hub.db
        .run(move |conn| {
            let out = build(conn, &hub_c, &notice)?;
            Ok(out.map(|mut o| {
                o.correlation_id = Some(id.clone());
                o
            }))
        })
        .await
}

fn headers(kind: &str, tenant: &str, thing: &str, topic: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = vec![("type", kind.to_owned()), ("tenant", tenant.to_owned()), ("thingId", thing.to_owned())];
    if let Some(t) = topic {
        h.push(("topic", t.to_owned()));
    }
    h.push(("content-type", "application/json".to_owned()));
    h
}

fn json_bytes(v: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(e.to_string()))
}

fn build(conn: &mut AnyConnection, hub: &Hub, notice: &Notice) -> Result<Option<Outbound>> {
    let text = |k: &str| notice.body[k].as_str().unwrap_or_default().to_owned();
    if notice.topic == THING_DELETED {
        return Ok(Some(Outbound {
            exchange: text("reply_to"),
            headers: headers("THING_DELETED", &text("tenant"), &text("thing"), None),
            content_type: "application/json",
            correlation_id: None,
            body: Vec::new(),
        }));
    }
    let Some(device) = db::device::find(conn, &text("device"))? else { return Ok(None) };
    let Some(exchange) = device.dmf_reply_to.clone() else { return Ok(None) };
    let product =
        db::product::find(conn, &device.product_id)?.ok_or_else(|| Error::internal("device without product"))?;
    let target = Target { product, device };
    let event = |topic: &str, body: Vec<u8>| Outbound {
        exchange: exchange.clone(),
        headers: headers("EVENT", &target.product.tid, &target.device.device_id, Some(topic)),
        content_type: "application/json",
        correlation_id: None,
        body,
    };
    if notice.topic == REQUEST_ATTRIBUTES_UPDATE {
        return Ok(Some(event(REQUEST_ATTRIBUTES_UPDATE, Vec::new())));
    }
    let Some(current) = action::current(conn, &target)? else { return Ok(None) };
    if notice.session.as_deref().is_some_and(|s| s != current.id) {
        // another action comes first; this one is announced when that one is over
        return Ok(None);
    }
    let now = time::now();
    Ok(match action::offer(&current, now)? {
        None => None,
        Some(Offer::Cancel { number }) => Some(event("CANCEL_DOWNLOAD", json_bytes(&json!({ "actionId": number }))?)),
        Some(Offer::Consent { .. }) => {
            Some(event("CONFIRM", json_bytes(&download_request(conn, hub, &target, &current)?)?))
        }
        Some(Offer::Deploy { .. }) => {
            let topic = if action::deployment_of(&current, now).update == Handling::Skip {
                "DOWNLOAD"
            } else {
                "DOWNLOAD_AND_INSTALL"
            };
            Some(event(topic, json_bytes(&download_request(conn, hub, &target, &current)?)?))
        }
    })
}

/// `DmfDownloadAndUpdateRequest`: the action's software module with every artifact the
/// action model lists (the same list DDI's `deploymentBase` serves), URLs of DDI's download
/// route under the public URL, and the device's target token.
fn download_request(conn: &mut AnyConnection, hub: &Hub, target: &Target, s: &Session) -> Result<DownloadRequest> {
    let info = action::deployment_info(conn, s, 0)?;
    let artifacts = info
        .artifacts
        .iter()
        .map(|a| Artifact {
            filename: a.filename.clone(),
            urls: dmf::artifact_urls(&action::artifact_url(hub, &target.product.tid, &target.device.device_id, a)),
            hashes: Hashes {
                sha1: a.digests.sha1.clone(),
                md5: a.digests.md5.clone(),
                sha256: a.digests.sha256.clone(),
            },
            size: a.digests.size,
        })
        .collect();
    Ok(DownloadRequest {
        action_id: info.number,
        target_security_token: super::devices::target_token(conn, hub, &target.device)?,
        software_modules: vec![SoftwareModule {
            module_id: info.number,
            module_type: "os".to_owned(),
            module_version: info.version,
            artifacts,
            metadata: Vec::new(),
        }],
    })
}
