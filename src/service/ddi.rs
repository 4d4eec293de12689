//! hawkBit DDI v1, the device side: a DDI *action* is a devicehub *session* that an admin
//! assigned (`service::assignments`). Its number is the action id; its deliverable is the
//! one artifact of the one software module (numbered like the action). Every state change
//! goes through `service::sessions::apply`, like the Leitwert door's.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sessions::{self, Applied, Details, JobSettings};
use crate::db::session::Session;
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::attributes;
use crate::domain::ddi::{
    self, ActionType, CancelEffect, Deployment, Execution, FeedbackEffect, Finished, cancel_feedback,
    deployment_feedback,
};
use crate::domain::ids::validate_device_id;
use crate::domain::rights::Action;
use crate::domain::session::{Event, State};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::storage::Blob;
use crate::time;

/// The credential a device (or its gateway) presented.
#[derive(Debug, Clone)]
pub enum DdiAuth {
    /// `Authorization: TargetToken <token>`: this device's own token.
    Target(String),
    /// `Authorization: GatewayToken <token>`: an API token of a user who may request
    /// updates in the product; acts for any device and registers unknown ones.
    Gateway(String),
    None,
}

/// The device a DDI request is about, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub product: db::product::Product,
    pub device: db::device::Device,
}

/// Where links point: `<public url><tenant>/controller/v1/<controllerId>` exactly as the
/// device wrote them.
#[derive(Debug, Clone)]
pub struct Address {
    pub tenant: String,
    pub controller_id: String,
}

/// DDI refuses without saying why (401 with an empty body); the log says it.
fn unauthorized(why: &str) -> Error {
    Error::Unauthorized(why.to_owned())
}

/// Finds the product of a tenant name: its handle, case-insensitively, or the configured
/// default product for `DEFAULT`.
fn product_of_tenant(conn: &mut AnyConnection, state: &AppState, tenant: &str) -> Result<db::product::Product> {
    if tenant.is_empty() || tenant.len() > 256 || tenant.chars().any(char::is_control) {
        return Err(unauthorized("unknown tenant"));
    }
    if let Some(p) = db::product::find_by_tid_ignoring_case(conn, tenant)? {
        return Ok(p);
    }
    if tenant.eq_ignore_ascii_case("DEFAULT")
        && let Some(default) = &state.settings.ddi_default_product
        && let Some(p) = db::product::find_by_tid_ignoring_case(conn, default)?
    {
        return Ok(p);
    }
    Err(unauthorized("unknown tenant"))
}

/// Authenticates a DDI request. `register`: a gateway may create an unknown device (poll).
pub fn authenticate(
    conn: &mut AnyConnection,
    state: &AppState,
    at: &Address,
    auth: &DdiAuth,
    register: bool,
) -> Result<Caller> {
    validate_device_id(&at.controller_id)
        .map_err(|_| Error::invalid("controllerId: 1 to 256 characters without white space"))?;
    let product = product_of_tenant(conn, state, &at.tenant)?;
    let device = db::device::find_by_device_id(conn, &product.id, &at.controller_id)?;
    match auth {
        DdiAuth::Target(token) => {
            if !product.ddi_target_token_auth {
                return Err(unauthorized("target tokens are switched off for this product"));
            }
            let device = device.ok_or_else(|| unauthorized("unknown device (a target token cannot register one)"))?;
            if device.target_token_hash.as_deref() != Some(super::auth::hash_token(token).as_str()) {
                return Err(unauthorized("wrong target token"));
            }
            Ok(Caller { product, device })
        }
        DdiAuth::Gateway(token) => {
            if !product.ddi_gateway_token_auth {
                return Err(unauthorized("gateway tokens are switched off for this product"));
            }
            let actor = super::auth::Credentials(token.clone()).authenticate_in(conn)?;
            if !actor.can(Action::RequestUpdate, super::product_scope(&product.id)?) {
                return Err(unauthorized("the gateway token has no device right on this product"));
            }
            let device = match device {
                Some(d) => d,
                None if register => register_device(conn, &product, &at.controller_id)?,
                None => return Err(Error::not_found(format!("device {:?}", at.controller_id))),
            };
            Ok(Caller { product, device })
        }
        DdiAuth::None => Err(unauthorized("no DDI credentials")),
    }
}

/// hawkBit's plug-and-play registration: a gateway polled for an unknown controllerId.
fn register_device(
    conn: &mut AnyConnection,
    product: &db::product::Product,
    controller_id: &str,
) -> Result<db::device::Device> {
    write_transaction(conn, |conn| {
        if let Some(d) = db::device::find_by_device_id(conn, &product.id, controller_id)? {
            return Ok(d);
        }
        let now = time::now();
        // the device's own token is not shown to anyone: its gateway speaks for it
        let (mut row, _) = super::devices::new_device(product.id.clone(), controller_id.to_owned(), now);
        row.last_seen = Some(now);
        db::device::insert(conn, &row)?;
        tracing::info!(product = %product.tid, device = controller_id, "registered a device for its gateway");
        Ok(row)
    })
}

/// Polls write "last seen" at most once a minute per device: a poll stays a read.
fn touch(conn: &mut AnyConnection, device: &db::device::Device, now: NaiveDateTime) -> Result<()> {
    if device.last_seen.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
        let changes = db::device::DeviceChanges { last_seen: Some(Some(now)), ..Default::default() };
        db::device::update(conn, &device.id, &changes)?;
    }
    Ok(())
}

// ---- the action model ---------------------------------------------------------------------

fn action_type(s: &Session) -> ActionType {
    s.action_type.as_deref().and_then(|t| t.parse().ok()).unwrap_or(ActionType::Forced)
}

fn state_of(s: &Session) -> Result<State> {
    s.state.parse()
}

/// Whether the device still works on it (hawkBit's `active`).
fn is_active(s: &Session) -> Result<bool> {
    Ok(s.expired_at.is_none() && !state_of(s)?.is_finished())
}

/// Whether the action ended by a confirmed cancel (hawkBit's CANCELED).
fn was_canceled(s: &Session) -> Result<bool> {
    Ok(state_of(s)? == State::Fail && s.fail_reason.as_deref() == Some(CANCELED))
}

fn waits_for_consent(s: &Session) -> bool {
    s.consent_required && s.consented_at.is_none()
}

pub fn deployment_of(s: &Session, now: NaiveDateTime) -> Deployment {
    let window = s.maintenance_start.zip(s.maintenance_end);
    ddi::deployment(action_type(s), window, now)
}

/// The action a request names: a session of this device, by number.
fn action(conn: &mut AnyConnection, caller: &Caller, raw: &str) -> Result<Session> {
    let number: i64 = raw.parse().map_err(|_| Error::invalid(format!("action id {raw:?} is not a number")))?;
    db::session::find_by_number(conn, &caller.product.id, number)?
        .filter(|s| s.device_id.as_deref() == Some(caller.device.id.as_str()) && s.action_type.is_some())
        .ok_or_else(|| Error::not_found(format!("action {number}")))
}

/// Applies due timers, so DDI sees what the other doors see.
fn refreshed(conn: &mut AnyConnection, s: Session) -> Result<Session> {
    let id = s.id.clone();
    if s.expired_at.is_some() {
        return Ok(s);
    }
    Ok(match sessions::apply_due_timers(conn, s, time::now())? {
        Some(s) => s,
        None => db::session::find(conn, &id)?.ok_or_else(|| Error::not_found("action"))?,
    })
}

/// How a DDI use-case touches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    /// A read, but a gateway may register an unknown device (the poll, `confirmationBase`).
    ReadOrRegister,
    /// In one write transaction.
    Write,
}

/// Runs a DDI use-case for the authenticated device on a pooled connection.
async fn as_device<T, F>(state: &AppState, at: Address, auth: DdiAuth, access: Access, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection, Caller) -> Result<T> + Send + 'static,
{
    let st = state.clone();
    let register = access == Access::ReadOrRegister;
    state
        .db
        .run(move |conn| {
            let call = move |conn: &mut AnyConnection| {
                let caller = authenticate(conn, &st, &at, &auth, register)?;
                f(conn, caller)
            };
            match access {
                Access::Read | Access::ReadOrRegister => call(conn),
                Access::Write => write_transaction(conn, call),
            }
        })
        .await
}

/// Checks a DDI request's credentials alone (no registration), so the door can refuse a
/// caller from the headers before it reads a body (issue 9, defect 7).
pub async fn check_credentials(state: &AppState, at: Address, auth: DdiAuth) -> Result<()> {
    as_device(state, at, auth, Access::Read, |_, _| Ok(())).await
}

/// The action a request names, with its due timers applied.
fn live_action(conn: &mut AnyConnection, caller: &Caller, number: &str) -> Result<Session> {
    let a = action(conn, caller, number)?;
    refreshed(conn, a)
}

// ---- poll ---------------------------------------------------------------------------------

/// What the poll links to.
#[derive(Debug, Default, Serialize)]
pub struct Poll {
    pub sleep: String,
    /// (`deploymentBase` | `confirmationBase` | `cancelAction`, action number, `c` value)
    pub action: Option<(&'static str, i64, Option<i64>)>,
    pub installed: Option<i64>,
    pub config_data: bool,
}

pub async fn poll(state: &AppState, at: Address, auth: DdiAuth) -> Result<Poll> {
    as_device(state, at, auth, Access::ReadOrRegister, move |conn, caller| {
        let now = time::now();
        touch(conn, &caller.device, now)?;
        let mut poll = Poll {
            sleep: ddi::polling_sleep(i64::from(caller.product.ddi_polling_secs)),
            config_data: caller.device.attributes_requested,
            ..Poll::default()
        };
        let open = db::session::open_assignments(conn, &caller.device.id)?;
        if let Some(current) = open.into_iter().next() {
            let current = refreshed(conn, current)?;
            if is_active(&current)? {
                poll.action = current_link(&current, now)?;
            }
        }
        if let Some(installed) = &caller.device.installed_session_id
            && let Some(s) = db::session::find(conn, installed)?
        {
            poll.installed = Some(s.number);
        }
        Ok(poll)
    })
    .await
}

/// hawkBit shows one link for the current action: the cancel if one is pending, the
/// consent while it waits for it, else the deployment once the deliverable exists.
fn current_link(s: &Session, now: NaiveDateTime) -> Result<Option<(&'static str, i64, Option<i64>)>> {
    if s.cancel_requested_at.is_some() {
        return Ok(Some(("cancelAction", s.number, None)));
    }
    if state_of(s)? != State::Created {
        return Ok(None); // still being prepared: nothing to offer yet
    }
    let c = Some(ddi::c_value(s.number, &deployment_of(s, now)));
    if waits_for_consent(s) {
        return Ok(Some(("confirmationBase", s.number, c)));
    }
    Ok(Some(("deploymentBase", s.number, c)))
}

// ---- deployment -----------------------------------------------------------------------------

/// One artifact: the session's deliverable.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    pub module: i64,
    pub filename: String,
    pub size: u64,
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
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

fn artifact_of(s: &Session) -> Result<Option<ArtifactInfo>> {
    let Some(payload) = &s.payload else { return Ok(None) };
    let p: Value = serde_json::from_str(payload).map_err(|e| Error::internal(format!("payload: {e}")))?;
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    Ok(Some(ArtifactInfo {
        module: s.number,
        filename: text("filename"),
        size: p["size"].as_u64().unwrap_or_default(),
        sha1: text("sha1"),
        md5: text("md5"),
        sha256: text("sha256"),
    }))
}

/// Device messages are stored as events `device:<hawkBit status>`; server notes as `server:…`.
const DEVICE_EVENT: &str = "device:";
const SERVER_EVENT: &str = "server:";

/// `actionHistory.status`: the hawkBit action status the session corresponds to.
fn history_status(conn: &mut AnyConnection, s: &Session) -> Result<String> {
    Ok(match state_of(s)? {
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

const RETRIEVED: &str = "server:RETRIEVED";
const CANCELED: &str = "canceled";

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

fn deployment_info(conn: &mut AnyConnection, s: &Session, history_wanted: i64) -> Result<DeploymentInfo> {
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
        artifacts: artifact_of(s)?.into_iter().collect(),
        history: history(conn, s, history_wanted)?,
    })
}

/// Notes that the device fetched the action (once in a row), as hawkBit's RETRIEVED.
fn note_retrieved(conn: &mut AnyConnection, s: &Session) -> Result<()> {
    if db::session::events(conn, &s.id, 1)?.first().is_some_and(|e| e.kind == RETRIEVED) {
        return Ok(());
    }
    let message = "Update Server: Target retrieved update action and should start now the download.";
    sessions::log_event(conn, &s.id, time::now(), RETRIEVED, None, None, Some(message.to_owned()))
}

/// `GET deploymentBase/{action}`.
pub async fn deployment_base(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        let s = live_action(conn, &caller, &number)?;
        if s.cancel_requested_at.is_some() || waits_for_consent(&s) || s.payload.is_none() {
            // the device should follow the cancel or consent link instead
            return Err(Error::not_found(format!("deployment of action {}", s.number)));
        }
        if is_active(&s)? {
            note_retrieved(conn, &s)?;
        }
        deployment_info(conn, &s, history)
    })
    .await
}

/// A DDI feedback body. Unknown fields (legacy `id`, `time`, …) are ignored.
#[derive(Debug, Deserialize)]
pub struct Feedback {
    pub status: FeedbackStatus,
}

#[derive(Debug, Deserialize)]
pub struct FeedbackStatus {
    pub execution: Execution,
    pub result: FeedbackResult,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub details: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct FeedbackResult {
    pub finished: Finished,
}

/// hawkBit: at most 1000 intermediate status rows per action.
pub const MAX_FEEDBACK_PER_ACTION: i64 = 1000;

/// hawkBit: at most 50 messages in one status report.
pub const MAX_MESSAGES_PER_FEEDBACK: usize = 50;

/// Checks a report's messages before anything is stored: at most 50, and text a database
/// keeps (PostgreSQL refuses NUL characters).
fn check_messages(details: Option<&Vec<String>>) -> Result<()> {
    let Some(details) = details else { return Ok(()) };
    if details.len() > MAX_MESSAGES_PER_FEEDBACK {
        return Err(Error::TooManyRequests(format!("at most {MAX_MESSAGES_PER_FEEDBACK} messages per status report")));
    }
    if details.iter().any(|d| d.contains('\0')) {
        return Err(Error::invalid("details: messages may not contain NUL characters"));
    }
    Ok(())
}

fn feedback_message(status: &FeedbackStatus, default: &str) -> String {
    let mut message = match &status.details {
        Some(d) if !d.is_empty() => d.join("\n"),
        _ => default.to_owned(),
    };
    if let Some(code) = status.code {
        message.push_str(&format!("\nDevice reported status code: {code}"));
    }
    message
}

fn record_device_event(conn: &mut AnyConnection, s: &Session, status: &str, message: String) -> Result<()> {
    if db::session::count_events(conn, &s.id)? >= MAX_FEEDBACK_PER_ACTION {
        return Err(Error::TooManyRequests(format!(
            "action {} has {MAX_FEEDBACK_PER_ACTION} status entries",
            s.number
        )));
    }
    sessions::log_event(conn, &s.id, time::now(), &format!("{DEVICE_EVENT}{status}"), None, None, Some(message))
}

/// `POST deploymentBase/{action}/feedback`.
pub async fn deployment_feedback_for(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    feedback: Feedback,
) -> Result<()> {
    let jobs = JobSettings::of(state);
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        check_messages(feedback.status.details.as_ref())?;
        let s = live_action(conn, &caller, &number)?;
        if waits_for_consent(&s) {
            return Err(Error::not_found(format!("deployment of action {}", s.number)));
        }
        if !is_active(&s)? {
            return Err(Error::Gone(format!("action {} is closed", s.number)));
        }
        let status = &feedback.status;
        match deployment_feedback(action_type(&s), status.execution, status.result.finished) {
            FeedbackEffect::Record(hawkbit_status) => {
                let default = format!("Target reported {hawkbit_status}");
                record_device_event(conn, &s, hawkbit_status, feedback_message(status, &default))
            }
            FeedbackEffect::Close { success, installed } => {
                let hawkbit_status = if success { "FINISHED" } else { "ERROR" };
                let default =
                    if success { "Target reported CLOSED with OK!" } else { "Target reported CLOSED with ERROR!" };
                let message = feedback_message(status, default);
                sessions::log_event(
                    conn,
                    &s.id,
                    time::now(),
                    &format!("{DEVICE_EVENT}{hawkbit_status}"),
                    None,
                    None,
                    Some(message.clone()),
                )?;
                close(conn, &jobs, &caller, &s, success, installed, &message)
            }
        }
    })
    .await
}

/// Ends an action from the device's `closed`: `success` or `fail` through the transition
/// table (`created` + confirm), and the twin learns what the device now runs.
fn close(
    conn: &mut AnyConnection,
    jobs: &JobSettings,
    caller: &Caller,
    s: &Session,
    success: bool,
    installed: bool,
    message: &str,
) -> Result<()> {
    let details = Details { message: Some(message.to_owned()), change: cleared_cancel() };
    match sessions::apply(conn, jobs, s, Event::Confirm { success }, time::now(), details)? {
        Applied::Moved(done) if success && installed => {
            if let Some(fw) =
                done.target_firmware_id.as_deref().map(|id| db::firmware::find(conn, id)).transpose()?.flatten()
            {
                let changes = db::device::DeviceChanges {
                    model_id: Some(Some(fw.model_id.clone())),
                    installed_firmware_id: Some(Some(fw.id)),
                    installed_version: Some(Some(fw.version)),
                    installed_session_id: Some(Some(done.id.clone())),
                    // hawkBit asks for fresh attributes after an update
                    attributes_requested: Some(true),
                    updated_at: Some(time::now()),
                    ..Default::default()
                };
                db::device::update(conn, &caller.device.id, &changes)?;
            }
            Ok(())
        }
        Applied::Moved(_) if success => {
            // a download-only action is over: hawkBit asks for fresh attributes here too
            let changes = db::device::DeviceChanges { attributes_requested: Some(true), ..Default::default() };
            db::device::update(conn, &caller.device.id, &changes)?;
            Ok(())
        }
        Applied::Moved(_) | Applied::Repeated(_) => Ok(()),
        Applied::Expired | Applied::Lost => {
            Err(Error::conflict("concurrent_update", "the action changed; send the feedback again"))
        }
    }
}

fn cleared_cancel() -> crate::db::session::StateChange {
    crate::db::session::StateChange { cancel_requested_at: Some(None), ..Default::default() }
}

// ---- cancel ---------------------------------------------------------------------------------

/// `GET cancelAction/{action}`: the action number to stop (only while a cancel is pending).
pub async fn cancel_action(state: &AppState, at: Address, auth: DdiAuth, number: String) -> Result<i64> {
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        let s = live_action(conn, &caller, &number)?;
        if was_canceled(&s)? {
            return Ok(s.number); // hawkBit answers for CANCELED actions too
        }
        if s.cancel_requested_at.is_none() || !is_active(&s)? {
            return Err(Error::not_found(format!("cancellation of action {}", s.number)));
        }
        note_retrieved(conn, &s)?;
        Ok(s.number)
    })
    .await
}

/// `POST cancelAction/{action}/feedback`.
pub async fn cancel_feedback_for(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    feedback: Feedback,
) -> Result<()> {
    let jobs = JobSettings::of(state);
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        check_messages(feedback.status.details.as_ref())?;
        let s = live_action(conn, &caller, &number)?;
        if was_canceled(&s)? {
            return Ok(()); // a repeated confirmation (the first answer may have been lost)
        }
        if s.cancel_requested_at.is_none() || !is_active(&s)? {
            return Err(Error::MethodNotAllowed(format!("action {} is not being canceled", s.number)));
        }
        let status = &feedback.status;
        match cancel_feedback(status.execution, status.result.finished) {
            CancelEffect::Canceled => {
                let message = feedback_message(status, "Cancellation completion is finished successfully.");
                sessions::log_event(
                    conn,
                    &s.id,
                    time::now(),
                    &format!("{DEVICE_EVENT}CANCELED"),
                    None,
                    None,
                    Some(message),
                )?;
                let details = Details { message: Some(CANCELED.to_owned()), change: cleared_cancel() };
                match sessions::apply(conn, &jobs, &s, Event::Cancel, time::now(), details)? {
                    Applied::Moved(_) | Applied::Repeated(_) => Ok(()),
                    Applied::Expired | Applied::Lost => {
                        Err(Error::conflict("concurrent_update", "the action changed; send the feedback again"))
                    }
                }
            }
            CancelEffect::Refused(hawkbit_status) => {
                let message = feedback_message(status, "Target was not able to complete cancellation");
                record_device_event(conn, &s, hawkbit_status, message)?;
                db::session::set_cancel_requested(conn, &s.id, None)?;
                Ok(())
            }
            CancelEffect::Record(hawkbit_status) => {
                let default = if hawkbit_status == "WARNING" {
                    "Target reported cancel for a cancel which is not supported by the server."
                } else {
                    "Target reported progress of the cancellation"
                };
                record_device_event(conn, &s, hawkbit_status, feedback_message(status, default))
            }
        }
    })
    .await
}

// ---- installed base -------------------------------------------------------------------------

/// `GET installedBase/{action}`: the action the device last installed.
pub async fn installed_base(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let s = action(conn, &caller, &number)?;
        if caller.device.installed_session_id.as_deref() != Some(s.id.as_str()) {
            return Err(Error::not_found(format!("installed action {}", s.number)));
        }
        deployment_info(conn, &s, history)
    })
    .await
}

/// `PUT installedBase` (hawkBit: experimental): the device says it runs a version that was
/// installed without an action. Returns whether the twin changed.
#[derive(Debug, Deserialize)]
pub struct InstalledReport {
    pub name: String,
    pub version: String,
}

pub async fn report_installed(state: &AppState, at: Address, auth: DdiAuth, report: InstalledReport) -> Result<bool> {
    let version = crate::domain::version::FirmwareVersion::parse_lenient("version", &report.version)?;
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let model_id = caller.device.model_id.clone().ok_or_else(|| Error::not_found("the device's model"))?;
        let fw = db::firmware::find_by_model_version(conn, &model_id, &version.to_string())?
            .ok_or_else(|| Error::not_found(format!("firmware {} {}", report.name, version)))?;
        if caller.device.installed_firmware_id.as_deref() == Some(fw.id.as_str()) {
            return Ok(false);
        }
        let changes = db::device::DeviceChanges {
            installed_firmware_id: Some(Some(fw.id)),
            installed_version: Some(Some(fw.version)),
            // installed without an action: no installedBase link to an older one
            installed_session_id: Some(None),
            updated_at: Some(time::now()),
            ..Default::default()
        };
        db::device::update(conn, &caller.device.id, &changes)?;
        Ok(true)
    })
    .await
}

// ---- configData -----------------------------------------------------------------------------

/// A configData body; legacy `id`, `time`, `status` are ignored.
#[derive(Debug, Deserialize)]
pub struct ConfigData {
    #[serde(default)]
    pub mode: Option<attributes::Mode>,
    pub data: Map<String, Value>,
}

pub async fn config_data(state: &AppState, at: Address, auth: DdiAuth, body: ConfigData) -> Result<()> {
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        let current: Map<String, Value> = serde_json::from_str(&caller.device.attributes).unwrap_or_default();
        let next = attributes::apply(&current, body.mode.unwrap_or_default(), &body.data)?;
        let changes = db::device::DeviceChanges {
            attributes: Some(Value::Object(next).to_string()),
            attributes_requested: Some(false),
            updated_at: Some(time::now()),
            ..Default::default()
        };
        db::device::update(conn, &caller.device.id, &changes)?;
        Ok(())
    })
    .await
}

// ---- confirmation (consent) -----------------------------------------------------------------

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

/// `GET confirmationBase`: the auto-confirm state and the action waiting for consent.
pub struct ConfirmationBase {
    pub auto_confirm: Option<AutoConfirm>,
    pub waiting: Option<(i64, i64)>,
}

fn auto_confirm_of(d: &db::device::Device) -> Option<AutoConfirm> {
    d.auto_confirm.as_deref().and_then(|a| serde_json::from_str(a).ok())
}

pub async fn confirmation_base(state: &AppState, at: Address, auth: DdiAuth) -> Result<ConfirmationBase> {
    as_device(state, at, auth, Access::ReadOrRegister, move |conn, caller| {
        let now = time::now();
        let mut waiting = None;
        if let Some(current) = db::session::open_assignments(conn, &caller.device.id)?.into_iter().next()
            && state_of(&current)? == State::Created
            && waits_for_consent(&current)
            && current.cancel_requested_at.is_none()
        {
            waiting = Some((current.number, ddi::c_value(current.number, &deployment_of(&current, now))));
        }
        Ok(ConfirmationBase { auto_confirm: auto_confirm_of(&caller.device), waiting })
    })
    .await
}

/// `GET confirmationBase/{action}`: the deployment awaiting consent.
pub async fn confirmation_action(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let s = live_action(conn, &caller, &number)?;
        if !waits_for_consent(&s) || s.cancel_requested_at.is_some() || !is_active(&s)? || s.payload.is_none() {
            return Err(Error::not_found(format!("confirmation of action {}", s.number)));
        }
        deployment_info(conn, &s, history)
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    Confirmed,
    Denied,
}

#[derive(Debug, Deserialize)]
pub struct ConsentFeedback {
    pub confirmation: Consent,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub details: Option<Vec<String>>,
}

/// `POST confirmationBase/{action}/feedback`: consent given, or refused (the action then
/// keeps waiting, as in hawkBit; an admin cancels it).
pub async fn consent(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    number: String,
    body: ConsentFeedback,
) -> Result<()> {
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        check_messages(body.details.as_ref())?;
        let s = live_action(conn, &caller, &number)?;
        if !is_active(&s)? {
            return Err(Error::Gone(format!("action {} is closed", s.number)));
        }
        if !waits_for_consent(&s) {
            return Err(Error::not_found(format!("confirmation of action {}", s.number)));
        }
        let mut message = match &body.details {
            Some(d) if !d.is_empty() => d.join("\n"),
            _ => match body.confirmation {
                Consent::Confirmed => "Target confirmed the action".to_owned(),
                Consent::Denied => "Target denied the action".to_owned(),
            },
        };
        if let Some(code) = body.code {
            message.push_str(&format!("\nConfirmation status code: {code}"));
        }
        match body.confirmation {
            Consent::Confirmed => {
                record_device_event(conn, &s, "RUNNING", message)?;
                db::session::set_consented(conn, &s.id, time::now())?;
            }
            Consent::Denied => record_device_event(conn, &s, "WAIT_FOR_CONFIRMATION", message)?,
        }
        Ok(())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActivateAutoConfirm {
    pub initiator: Option<String>,
    pub remark: Option<String>,
}

/// Turns auto-confirm on and gives consent to every action waiting for it.
pub async fn activate_auto_confirm(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    body: ActivateAutoConfirm,
) -> Result<()> {
    as_device(state, at, auth, Access::Write, move |conn, caller| {
        if caller.device.auto_confirm.is_some() {
            return Err(Error::conflict("auto_confirm_active", "auto-confirm is already active"));
        }
        let now = time::now();
        let remark = body
            .remark
            .clone()
            .or_else(|| Some("Initiated using the Device Direct Integration API without providing a remark.".into()));
        let state =
            AutoConfirm { initiator: body.initiator.clone(), remark, activated_at: now.and_utc().timestamp_millis() };
        let changes = db::device::DeviceChanges {
            auto_confirm: Some(Some(serde_json::to_string(&state).map_err(|e| Error::internal(e.to_string()))?)),
            ..Default::default()
        };
        db::device::update(conn, &caller.device.id, &changes)?;
        for s in db::session::open_assignments(conn, &caller.device.id)? {
            if waits_for_consent(&s) {
                db::session::set_consented(conn, &s.id, now)?;
                let message = format!("{SERVER_EVENT}auto-confirmed");
                sessions::log_event(
                    conn,
                    &s.id,
                    now,
                    &message,
                    None,
                    None,
                    Some("Auto-confirmation is active".into()),
                )?;
            }
        }
        Ok(())
    })
    .await
}

pub async fn deactivate_auto_confirm(state: &AppState, at: Address, auth: DdiAuth) -> Result<()> {
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let changes = db::device::DeviceChanges { auto_confirm: Some(None), ..Default::default() };
        db::device::update(conn, &caller.device.id, &changes)?;
        Ok(())
    })
    .await
}

// ---- artifacts ------------------------------------------------------------------------------

/// A module's artifacts may be fetched while its action is active (and consented), or when
/// it is the device's installed one (so a device can fetch it again).
fn module_session(conn: &mut AnyConnection, caller: &Caller, module: &str) -> Result<Session> {
    let a = action(conn, caller, module).map_err(|e| match e {
        Error::NotFound(_) => Error::not_found(format!("software module {module}")),
        other => other,
    })?;
    let s = refreshed(conn, a)?;
    let installed = caller.device.installed_session_id.as_deref() == Some(s.id.as_str());
    let active = is_active(&s)? && !waits_for_consent(&s);
    if s.payload.is_none() || !(active || installed) {
        return Err(Error::not_found(format!("software module {module}")));
    }
    Ok(s)
}

pub async fn artifacts(state: &AppState, at: Address, auth: DdiAuth, module: String) -> Result<Vec<ArtifactInfo>> {
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let s = module_session(conn, &caller, &module)?;
        Ok(artifact_of(&s)?.into_iter().collect())
    })
    .await
}

/// What to serve for an artifact download, and the session to note a full download on.
pub struct ArtifactDownload {
    pub blob: Blob,
    pub artifact: ArtifactInfo,
    pub session_id: String,
}

pub async fn artifact(
    state: &AppState,
    at: Address,
    auth: DdiAuth,
    module: String,
    file: String,
) -> Result<ArtifactDownload> {
    as_device(state, at, auth, Access::Read, move |conn, caller| {
        let s = module_session(conn, &caller, &module)?;
        let artifact = artifact_of(&s)?
            .filter(|a| a.filename == file)
            .ok_or_else(|| Error::not_found(format!("artifact {file:?}")))?;
        let key = s.artifact_key.clone().ok_or_else(|| Error::not_found("artifact"))?;
        Ok(ArtifactDownload {
            blob: Blob { key, size: artifact.size, etag: artifact.sha1.clone(), filename: artifact.filename.clone() },
            artifact,
            session_id: s.id,
        })
    })
    .await
}

/// A whole-artifact download goes into the history (hawkBit's DOWNLOAD row); range requests
/// never do: a streaming client may send thousands (hawkBit #1249).
pub async fn note_download(state: &AppState, session_id: String, uri: String) -> Result<()> {
    state
        .db
        .run(move |conn| {
            let message = format!("Update Server: Target downloads {uri}");
            sessions::log_event(
                conn,
                &session_id,
                time::now(),
                &format!("{SERVER_EVENT}DOWNLOAD"),
                None,
                None,
                Some(message),
            )
        })
        .await
}
