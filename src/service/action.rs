//! hawkBit's action model, door-neutral: an *action* is a session an admin assigned to a
//! device (`service::assignments`); its number is the action id, its deliverable the one
//! artifact of the one software module (numbered like the action). The DDI door (HTTP
//! polling, `service::ddi`) and the DMF door (AMQP) both call these functions, each after
//! finding the device its own way; nothing here knows how the device was authenticated.
//! Every state change goes through the session engine.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::session::engine::{self, Applied, Details, Limits};
use crate::db::session::Session;
use crate::db::{self, AnyConnection};
use crate::domain::attributes;
use crate::domain::ddi::{self, ActionType, CancelEffect, Deployment, FeedbackEffect};
use crate::domain::digests::Digests;
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::time;

/// The device an action is for, and its product (hawkBit's tenant).
#[derive(Debug, Clone)]
pub struct Target {
    pub product: db::product::Product,
    pub device: db::device::Device,
}

/// Device messages are stored as events `device:<hawkBit status>`; server notes as `server:…`.
pub const DEVICE_EVENT: &str = "device:";
pub const SERVER_EVENT: &str = "server:";
const RETRIEVED: &str = "server:RETRIEVED";
/// The fail reason of an action whose cancel the device confirmed.
pub const CANCELED: &str = "canceled";

/// hawkBit: at most 1000 intermediate status rows per action.
pub const MAX_FEEDBACK_PER_ACTION: i64 = 1000;

/// hawkBit: at most 50 messages in one status report.
pub const MAX_MESSAGES_PER_FEEDBACK: usize = 50;

// ---- devices and tenants ----------------------------------------------------------------

/// The product a hawkBit tenant name stands for: its handle, case-insensitively, or the
/// configured default product for `DEFAULT`.
pub fn product_of_tenant(
    conn: &mut AnyConnection,
    default_product: Option<&str>,
    tenant: &str,
) -> Result<Option<db::product::Product>> {
    if tenant.is_empty() || tenant.len() > 256 || tenant.chars().any(char::is_control) {
        return Ok(None);
    }
    if let Some(p) = db::product::find_by_tid_ignoring_case(conn, tenant)? {
        return Ok(Some(p));
    }
    if tenant.eq_ignore_ascii_case("DEFAULT")
        && let Some(default) = default_product
    {
        return Ok(db::product::find_by_tid_ignoring_case(conn, default)?);
    }
    Ok(None)
}

/// hawkBit's plug-and-play registration: a device a gateway speaks for appears.
pub fn register_device(
    conn: &mut AnyConnection,
    product: &db::product::Product,
    controller_id: &str,
) -> Result<db::device::Device> {
    db::write_transaction_retrying(conn, |conn| {
        if let Some(d) = db::device::find_by_device_id(conn, &product.id, controller_id)? {
            return Ok(d);
        }
        let now = time::now();
        // no one would ever see a token made here: the device has none (it cannot use target
        // tokens) until an admin rotates one; its gateway speaks for it
        let (mut row, _) = super::devices::new_device(product.id.clone(), controller_id.to_owned(), now);
        row.target_token_hash = None;
        row.last_seen = Some(now);
        db::device::insert(conn, &row)?;
        tracing::info!(product = %product.tid, device = controller_id, "registered a device for its gateway");
        Ok(row)
    })
}

/// "Last seen", written at most once a minute per device: a poll stays a read.
pub fn touch(conn: &mut AnyConnection, device: &db::device::Device, now: NaiveDateTime) -> Result<()> {
    if device.last_seen.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
        let changes = db::device::DeviceChanges { last_seen: Some(Some(now)), ..Default::default() };
        db::device::update(conn, &device.id, &changes)?;
    }
    Ok(())
}

// ---- reading an action --------------------------------------------------------------------

pub fn action_type(s: &Session) -> ActionType {
    s.action_type.as_deref().and_then(|t| t.parse().ok()).unwrap_or(ActionType::Forced)
}

/// Whether the device still works on it (hawkBit's `active`).
pub fn is_active(s: &Session) -> Result<bool> {
    Ok(s.expired_at.is_none() && !engine::state_of(s)?.is_finished())
}

/// Whether the action ended by a confirmed cancel (hawkBit's CANCELED).
pub fn was_canceled(s: &Session) -> Result<bool> {
    Ok(engine::state_of(s)? == State::Fail && s.fail_reason.as_deref() == Some(CANCELED))
}

pub fn waits_for_consent(s: &Session) -> bool {
    s.consent_required && s.consented_at.is_none()
}

pub fn deployment_of(s: &Session, now: NaiveDateTime) -> Deployment {
    let window = s.maintenance_start.zip(s.maintenance_end);
    ddi::deployment(action_type(s), window, now)
}

/// The action a device names: a session of this device, by number.
pub fn find(conn: &mut AnyConnection, target: &Target, raw: &str) -> Result<Session> {
    let number: i64 = raw.parse().map_err(|_| Error::invalid(format!("action id {raw:?} is not a number")))?;
    db::session::find_by_number(conn, &target.product.id, number)?
        .filter(|s| s.device_id.as_deref() == Some(target.device.id.as_str()) && s.action_type.is_some())
        .ok_or_else(|| Error::not_found(format!("action {number}")))
}

/// Applies due timers, so every door sees what the others see.
pub fn refreshed(conn: &mut AnyConnection, s: Session) -> Result<Session> {
    let id = s.id.clone();
    if s.expired_at.is_some() {
        return Ok(s);
    }
    Ok(match engine::apply_due_timers(conn, s, time::now())? {
        Some(s) => s,
        None => db::session::find(conn, &id)?.ok_or_else(|| Error::not_found("action"))?,
    })
}

/// The action a device names, with its due timers applied.
pub fn live(conn: &mut AnyConnection, target: &Target, number: &str) -> Result<Session> {
    let a = find(conn, target, number)?;
    refreshed(conn, a)
}

/// The device's current action (hawkBit shows one at a time: the oldest open one).
pub fn current(conn: &mut AnyConnection, target: &Target) -> Result<Option<Session>> {
    let Some(first) = db::session::open_assignments(conn, &target.device.id)?.into_iter().next() else {
        return Ok(None);
    };
    let s = refreshed(conn, first)?;
    Ok(if is_active(&s)? { Some(s) } else { None })
}

/// What a device should do about its current action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Stop it (`cancelAction`).
    Cancel { number: i64 },
    /// Consent first (`confirmationBase`); `c` changes with the instructions.
    Consent { number: i64, c: i64 },
    /// Download (and install, as the deployment says) (`deploymentBase`).
    Deploy { number: i64, c: i64 },
}

/// The cancel if one is pending, the consent while it waits for it, else the deployment
/// once the deliverable exists; nothing while it is being prepared.
pub fn offer(s: &Session, now: NaiveDateTime) -> Result<Option<Offer>> {
    if s.cancel_requested_at.is_some() {
        return Ok(Some(Offer::Cancel { number: s.number }));
    }
    if engine::state_of(s)? != State::Created {
        return Ok(None);
    }
    let c = ddi::c_value(s.number, &deployment_of(s, now));
    if waits_for_consent(s) {
        return Ok(Some(Offer::Consent { number: s.number, c }));
    }
    Ok(Some(Offer::Deploy { number: s.number, c }))
}

/// One artifact: the session's deliverable.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    pub module: i64,
    pub filename: String,
    #[serde(flatten)]
    pub digests: Digests,
}

#[derive(Debug, Clone)]
pub struct DeploymentInfo {
    pub number: i64,
    pub deployment: Deployment,
    pub chunk_name: String,
    pub version: String,
    pub artifacts: Vec<ArtifactInfo>,
    /// (`actionHistory.status`, newest device messages first); `None` when not asked for.
    pub history: Option<(String, Vec<String>)>,
}

/// The DDI download URL of an artifact, absolute under the public URL; DMF hands it out too.
pub fn artifact_url(hub: &super::Hub, tenant: &str, controller_id: &str, a: &ArtifactInfo) -> String {
    let mut url = hub.public_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        let module = a.module.to_string();
        segments.pop_if_empty().extend([
            tenant,
            "controller",
            "v1",
            controller_id,
            "softwaremodules",
            &module,
            "artifacts",
            &a.filename,
        ]);
    }
    url.into()
}

pub fn artifact_of(s: &Session) -> Result<Option<ArtifactInfo>> {
    let Some(payload) = &s.payload else { return Ok(None) };
    let p: Value = serde_json::from_str(payload).map_err(|e| Error::internal(format!("payload: {e}")))?;
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    Ok(Some(ArtifactInfo {
        module: s.number,
        filename: text("filename"),
        digests: Digests {
            size: p["size"].as_u64().unwrap_or_default(),
            sha256: text("sha256"),
            sha1: text("sha1"),
            md5: text("md5"),
        },
    }))
}

/// The small files the steps attach to the deliverable, by name, with their text: with a
/// `sign` step, its signature (`<file>.minisig`) and signed manifest (`<file>.manifest.json`).
pub fn attached_files(s: &Session) -> Result<Vec<(String, String)>> {
    let Some(payload) = &s.payload else { return Ok(Vec::new()) };
    let p: Value = serde_json::from_str(payload).map_err(|e| Error::internal(format!("payload: {e}")))?;
    let filename = p["filename"].as_str().unwrap_or_default();
    let mut files = Vec::new();
    for (field, suffix) in [("signature", "minisig"), ("signed_manifest", "manifest.json")] {
        if let Some(text) = p[field].as_str() {
            files.push((format!("{filename}.{suffix}"), text.to_owned()));
        }
    }
    Ok(files)
}

/// Every artifact of an action's software module: the deliverable first, then the files
/// attached to it (DDI's `deploymentBase` and the DMF message list the same).
pub fn artifacts_of(s: &Session) -> Result<Vec<ArtifactInfo>> {
    let Some(deliverable) = artifact_of(s)? else { return Ok(Vec::new()) };
    let mut all = vec![deliverable];
    for (filename, text) in attached_files(s)? {
        all.push(ArtifactInfo { module: s.number, filename, digests: Digests::of_bytes(text.as_bytes()) });
    }
    Ok(all)
}

/// `actionHistory.status`: the hawkBit action status the session corresponds to.
fn history_status(conn: &mut AnyConnection, s: &Session) -> Result<String> {
    Ok(match engine::state_of(s)? {
        State::Success => "FINISHED",
        State::Fail if s.fail_reason.as_deref() == Some(CANCELED) => "CANCELED",
        State::Fail | State::Unconfirmed => "ERROR",
        _ if s.cancel_requested_at.is_some() => "CANCELING",
        _ if waits_for_consent(s) => "WAIT_FOR_CONFIRMATION",
        _ => {
            let retrieved = db::session::events(conn, &s.id, 1)?.first().is_some_and(|e| e.kind == RETRIEVED);
            if retrieved { "RETRIEVED" } else { "RUNNING" }
        }
    }
    .to_owned())
}

fn history(conn: &mut AnyConnection, s: &Session, wanted: i64) -> Result<Option<(String, Vec<String>)>> {
    if wanted == 0 {
        return Ok(None);
    }
    let limit = if !(1..100).contains(&wanted) { 100 } else { wanted };
    let messages: Vec<String> = db::session::events(conn, &s.id, 1000)?
        .into_iter()
        .filter(|e| e.kind.starts_with(DEVICE_EVENT))
        .filter_map(|e| e.message)
        .take(usize::try_from(limit).unwrap_or(100))
        .collect();
    if messages.is_empty() {
        return Ok(None);
    }
    Ok(Some((history_status(conn, s)?, messages)))
}

/// The deployment of an action, with up to `history_wanted` device messages.
pub fn deployment_info(conn: &mut AnyConnection, s: &Session, history_wanted: i64) -> Result<DeploymentInfo> {
    let fw = match &s.target_firmware_id {
        Some(id) => db::firmware::find(conn, id)?,
        None => None,
    };
    let model = db::model::find(conn, &s.model_id)?;
    Ok(DeploymentInfo {
        number: s.number,
        deployment: deployment_of(s, time::now()),
        chunk_name: model.map_or_else(|| "firmware".to_owned(), |m| m.name),
        version: fw.map(|f| f.version).unwrap_or_default(),
        artifacts: artifacts_of(s)?,
        history: history(conn, s, history_wanted)?,
    })
}

/// Notes that the device fetched the action (once in a row), as hawkBit's RETRIEVED.
pub fn note_retrieved(conn: &mut AnyConnection, s: &Session) -> Result<()> {
    if db::session::events(conn, &s.id, 1)?.first().is_some_and(|e| e.kind == RETRIEVED) {
        return Ok(());
    }
    engine::note(
        conn,
        &s.id,
        RETRIEVED,
        "Update Server: Target retrieved update action and should start now the download.",
    )
}

/// What one download answer served of a session's deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The whole of it (or its checksum file: 0 bytes of the deliverable), `bytes` long.
    Whole { bytes: u64 },
    /// One byte range.
    Range { bytes: u64 },
}

/// A whole-artifact download goes into the history (hawkBit's DOWNLOAD row); range requests
/// never do each: a streaming client may send thousands (hawkBit #1249). The first range of
/// a session that was served nothing before notes `DOWNLOAD_STARTED` (so a streaming install
/// leaves a record), and every answer adds its bytes to the session's `bytes_served`.
pub fn note_download(conn: &mut AnyConnection, session_id: &str, uri: &str, served: Served) -> Result<()> {
    let bytes = match served {
        Served::Whole { bytes } | Served::Range { bytes } => bytes,
    };
    let total = db::session::add_bytes_served(conn, session_id, i64::try_from(bytes).unwrap_or(i64::MAX))?;
    match served {
        Served::Whole { .. } => engine::note(
            conn,
            session_id,
            &format!("{SERVER_EVENT}DOWNLOAD"),
            format!("Update Server: Target downloads {uri}"),
        ),
        // the counter was 0 before this answer (rows are locked by the update, so two
        // concurrent first ranges cannot both see it)
        Served::Range { bytes } if u64::try_from(total).is_ok_and(|t| t == bytes) && bytes > 0 => engine::note(
            conn,
            session_id,
            &format!("{SERVER_EVENT}DOWNLOAD_STARTED"),
            format!("Update Server: Target started downloading in byte ranges {uri}"),
        ),
        Served::Range { .. } => Ok(()),
    }
}

/// A module's artifacts may be fetched while its action is active (and consented), or when
/// it is the device's installed one (so a device can fetch it again).
pub fn module_session(conn: &mut AnyConnection, target: &Target, module: &str) -> Result<Session> {
    let a = find(conn, target, module).map_err(|e| match e {
        Error::NotFound(_) => Error::not_found(format!("software module {module}")),
        other => other,
    })?;
    let s = refreshed(conn, a)?;
    let installed = target.device.installed_session_id.as_deref() == Some(s.id.as_str());
    let active = is_active(&s)? && !waits_for_consent(&s);
    if s.payload.is_none() || !(active || installed) {
        return Err(Error::not_found(format!("software module {module}")));
    }
    Ok(s)
}

// ---- what devices report ------------------------------------------------------------------

/// A device's messages and status code, however its door carried them.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub messages: Vec<String>,
    pub code: Option<i64>,
}

impl Report {
    /// Checks a report before anything is stored: at most 50 messages, and text a database
    /// keeps (PostgreSQL refuses NUL characters).
    pub fn check(&self) -> Result<()> {
        if self.messages.len() > MAX_MESSAGES_PER_FEEDBACK {
            return Err(Error::TooManyRequests(format!(
                "at most {MAX_MESSAGES_PER_FEEDBACK} messages per status report"
            )));
        }
        if self.messages.iter().any(|d| d.contains('\0')) {
            return Err(Error::invalid("details: messages may not contain NUL characters"));
        }
        Ok(())
    }

    /// The messages as one history entry, or hawkBit's default text.
    pub fn message(&self, default: &str) -> String {
        let mut message = if self.messages.is_empty() { default.to_owned() } else { self.messages.join("\n") };
        if let Some(code) = self.code {
            message.push_str(&format!("\nDevice reported status code: {code}"));
        }
        message
    }
}

/// A device's status message in the action's history, as `device:<hawkBit status>`.
pub fn record_device_event(conn: &mut AnyConnection, s: &Session, status: &str, message: String) -> Result<()> {
    if db::session::count_events(conn, &s.id)? >= MAX_FEEDBACK_PER_ACTION {
        return Err(Error::TooManyRequests(format!(
            "action {} has {MAX_FEEDBACK_PER_ACTION} status entries",
            s.number
        )));
    }
    engine::note(conn, &s.id, &format!("{DEVICE_EVENT}{status}"), message)
}

/// Applies a deployment status report (DDI feedback, DMF `UPDATE_ACTION_STATUS`) to an
/// active action: recorded, or the action closes (`success`/`fail`) and the twin learns what
/// the device now runs.
pub fn deployment_report(
    conn: &mut AnyConnection,
    limits: &Limits,
    target: &Target,
    s: &Session,
    effect: FeedbackEffect,
    report: &Report,
) -> Result<()> {
    match effect {
        FeedbackEffect::Record(status) => {
            record_device_event(conn, s, status, report.message(&format!("Target reported {status}")))
        }
        FeedbackEffect::Close { success, installed } => {
            let status = if success { "FINISHED" } else { "ERROR" };
            let default =
                if success { "Target reported CLOSED with OK!" } else { "Target reported CLOSED with ERROR!" };
            let message = report.message(default);
            engine::note(conn, &s.id, &format!("{DEVICE_EVENT}{status}"), message.clone())?;
            close(conn, limits, target, s, success, installed, &message)
        }
    }
}

/// Ends an action from the device's `closed`: `success` or `fail` through the transition
/// table (`created` + confirm), and the twin learns what the device now runs.
fn close(
    conn: &mut AnyConnection,
    limits: &Limits,
    target: &Target,
    s: &Session,
    success: bool,
    installed: bool,
    message: &str,
) -> Result<()> {
    let details = Details { message: Some(message.to_owned()), change: engine::cleared_cancel(), ..Details::default() };
    match engine::apply(conn, limits, s, Event::Confirm { success }, time::now(), details)? {
        Applied::Moved(done) if success && installed => {
            super::twin::record_action_installed(conn, &target.device, &done)
        }
        Applied::Moved(_) if success => {
            // a download-only action is over: hawkBit asks for fresh attributes here too
            super::twin::request_attributes(conn, &target.device)
        }
        Applied::Moved(_) | Applied::Repeated(_) => Ok(()),
        Applied::Expired | Applied::Lost => {
            Err(Error::conflict("concurrent_update", "the action changed; send the feedback again"))
        }
    }
}

/// Applies a cancel status report to an action being canceled: the device stopped (the
/// action ends `fail`, reason `canceled`), refused (the update goes on), or is still busy.
pub fn cancel_report(
    conn: &mut AnyConnection,
    limits: &Limits,
    s: &Session,
    effect: CancelEffect,
    report: &Report,
) -> Result<()> {
    match effect {
        CancelEffect::Canceled => {
            let message = report.message("Cancellation completion is finished successfully.");
            engine::note(conn, &s.id, &format!("{DEVICE_EVENT}CANCELED"), message)?;
            let details =
                Details { message: Some(CANCELED.to_owned()), change: engine::cleared_cancel(), ..Details::default() };
            match engine::apply(conn, limits, s, Event::Cancel, time::now(), details)? {
                Applied::Moved(_) | Applied::Repeated(_) => Ok(()),
                Applied::Expired | Applied::Lost => {
                    Err(Error::conflict("concurrent_update", "the action changed; send the feedback again"))
                }
            }
        }
        CancelEffect::Refused(status) => {
            record_device_event(conn, s, status, report.message("Target was not able to complete cancellation"))?;
            engine::withdraw_cancel(conn, s)
        }
        CancelEffect::Record(status) => {
            let default = if status == "WARNING" {
                "Target reported cancel for a cancel which is not supported by the server."
            } else {
                "Target reported progress of the cancellation"
            };
            record_device_event(conn, s, status, report.message(default))
        }
    }
}

/// The device runs a version that was installed without an action. Returns whether the
/// twin changed.
pub fn report_installed(conn: &mut AnyConnection, target: &Target, name: &str, version: &str) -> Result<bool> {
    let version = crate::domain::version::FirmwareVersion::parse_lenient("version", version)?;
    let model_id = target.device.model_id.clone().ok_or_else(|| Error::not_found("the device's model"))?;
    let fw = db::firmware::find_by_model_version(conn, &model_id, &version.to_string())?
        .ok_or_else(|| Error::not_found(format!("firmware {name} {version}")))?;
    if target.device.installed_firmware_id.as_deref() == Some(fw.id.as_str()) {
        return Ok(false);
    }
    super::twin::record_installed_without_action(conn, &target.device, &fw)?;
    Ok(true)
}

/// The device's attributes (DDI `configData`, DMF `UPDATE_ATTRIBUTES`), merged, replaced or
/// removed by hawkBit's rules.
pub fn update_attributes(
    conn: &mut AnyConnection,
    target: &Target,
    mode: attributes::Mode,
    data: &Map<String, Value>,
) -> Result<()> {
    let current: Map<String, Value> = serde_json::from_str(&target.device.attributes).unwrap_or_default();
    let next = attributes::apply(&current, mode, data)?;
    super::twin::set_attributes(conn, &target.device, next)
}

// ---- consent ------------------------------------------------------------------------------

/// A device's auto-confirm state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AutoConfirm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Epoch milliseconds, as hawkBit sends it.
    #[serde(default)]
    pub activated_at: i64,
}

pub fn auto_confirm_of(d: &db::device::Device) -> Option<AutoConfirm> {
    d.auto_confirm.as_deref().and_then(|a| serde_json::from_str(a).ok())
}

/// The action waiting for the device's consent, with its `c` value.
pub fn waiting_for_consent(conn: &mut AnyConnection, target: &Target) -> Result<Option<(i64, i64)>> {
    let now = time::now();
    if let Some(current) = db::session::open_assignments(conn, &target.device.id)?.into_iter().next()
        && engine::state_of(&current)? == State::Created
        && waits_for_consent(&current)
        && current.cancel_requested_at.is_none()
    {
        return Ok(Some((current.number, ddi::c_value(current.number, &deployment_of(&current, now)))));
    }
    Ok(None)
}

/// Consent given (the action is offered from now on) or refused (it keeps waiting, as in
/// hawkBit; an admin cancels it).
pub fn consent(conn: &mut AnyConnection, s: &Session, confirmed: bool, report: &Report) -> Result<()> {
    if !is_active(s)? {
        return Err(Error::Gone(format!("action {} is closed", s.number)));
    }
    if !waits_for_consent(s) {
        return Err(Error::not_found(format!("confirmation of action {}", s.number)));
    }
    let mut message = if report.messages.is_empty() {
        if confirmed { "Target confirmed the action" } else { "Target denied the action" }.to_owned()
    } else {
        report.messages.join("\n")
    };
    if let Some(code) = report.code {
        message.push_str(&format!("\nConfirmation status code: {code}"));
    }
    if confirmed {
        record_device_event(conn, s, "RUNNING", message)?;
        engine::record_consent(conn, s, time::now())
    } else {
        record_device_event(conn, s, "WAIT_FOR_CONFIRMATION", message)
    }
}

/// Turns auto-confirm on and gives consent to every action waiting for it.
pub fn activate_auto_confirm(
    conn: &mut AnyConnection,
    target: &Target,
    initiator: Option<String>,
    remark: Option<String>,
) -> Result<()> {
    if target.device.auto_confirm.is_some() {
        return Err(Error::conflict("auto_confirm_active", "auto-confirm is already active"));
    }
    let now = time::now();
    let remark =
        remark.or_else(|| Some("Initiated using the Device Direct Integration API without providing a remark.".into()));
    let state = AutoConfirm { initiator, remark, activated_at: now.and_utc().timestamp_millis() };
    super::twin::set_auto_confirm(conn, &target.device, Some(&state))?;
    for s in db::session::open_assignments(conn, &target.device.id)? {
        if waits_for_consent(&s) {
            engine::record_consent(conn, &s, now)?;
            engine::note(conn, &s.id, &format!("{SERVER_EVENT}auto-confirmed"), "Auto-confirmation is active")?;
        }
    }
    Ok(())
}

pub fn deactivate_auto_confirm(conn: &mut AnyConnection, target: &Target) -> Result<()> {
    super::twin::set_auto_confirm(conn, &target.device, None)
}
