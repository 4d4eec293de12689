//! hawkBit DDI v1, the device side of the HTTP polling door: who is calling (target and
//! gateway tokens, tenants, plug-and-play registration) and the DDI use-cases, each a thin
//! adapter over the door-neutral action model (`service::action`), which DMF shares.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::action::{self, ArtifactInfo, AutoConfirm, DeploymentInfo, Offer, Report, Target};
use super::recent::Stamp;
use super::session::engine::Limits;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::attributes;
use crate::domain::ddi::{self, Execution, Finished, cancel_feedback, deployment_feedback};
use crate::domain::ids::validate_device_id;
use crate::domain::rights::Action;
use crate::error::{Error, Result};
use crate::service::Hub;
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

/// Authenticates a DDI request. `register`: a gateway may create an unknown device (poll).
pub fn authenticate(
    conn: &mut AnyConnection,
    hub: &Hub,
    at: &Address,
    auth: &DdiAuth,
    register: bool,
) -> Result<Target> {
    validate_device_id(&at.controller_id)
        .map_err(|_| Error::invalid("controllerId: 1 to 256 characters without white space"))?;
    let product = action::product_of_tenant(conn, hub.settings.ddi_default_product.as_deref(), &at.tenant)?
        .ok_or_else(|| unauthorized("unknown tenant"))?;
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
            Ok(Target { product, device })
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
                None if register => action::register_device(conn, &product, &at.controller_id)?,
                None => return Err(Error::not_found(format!("device {:?}", at.controller_id))),
            };
            Ok(Target { product, device })
        }
        DdiAuth::None => Err(unauthorized("no DDI credentials")),
    }
}

/// How a DDI use-case touches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    /// A read, but a gateway may register an unknown device (the poll, `confirmationBase`).
    ReadOrRegister,
    /// In one write transaction (run again if the database aborts it for contention).
    Write,
}

/// Runs a DDI use-case for the authenticated device on a pooled connection.
async fn as_device<T, F>(hub: &Hub, at: Address, auth: DdiAuth, access: Access, mut f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut AnyConnection, Target) -> Result<T> + Send + 'static,
{
    let hub_c = hub.clone();
    let register = access == Access::ReadOrRegister;
    hub.db
        .run(move |conn| {
            let mut call = move |conn: &mut AnyConnection| {
                let target = authenticate(conn, &hub_c, &at, &auth, register)?;
                f(conn, target)
            };
            match access {
                Access::Read | Access::ReadOrRegister => call(conn),
                Access::Write => write_transaction_retrying(conn, call),
            }
        })
        .await
}

/// Checks a DDI request's credentials alone (no registration), so the door can refuse a
/// caller from the headers before it reads a body (issue 9, defect 7).
pub async fn check_credentials(hub: &Hub, at: Address, auth: DdiAuth) -> Result<()> {
    as_device(hub, at, auth, Access::Read, |_, _| Ok(())).await
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

pub async fn poll(hub: &Hub, at: Address, auth: DdiAuth) -> Result<Poll> {
    as_device(hub, at, auth, Access::ReadOrRegister, move |conn, target| {
        let now = time::now();
        action::touch(conn, &target.device, now)?;
        let mut poll = Poll {
            sleep: ddi::polling_sleep(i64::from(target.product.ddi_polling_secs)),
            config_data: target.device.attributes_requested,
            ..Poll::default()
        };
        if let Some(current) = action::current(conn, &target)? {
            poll.action = action::offer(&current, now)?.map(|offer| match offer {
                Offer::Cancel { number } => ("cancelAction", number, None),
                Offer::Consent { number, c } => ("confirmationBase", number, Some(c)),
                Offer::Deploy { number, c } => ("deploymentBase", number, Some(c)),
            });
        }
        if let Some(installed) = &target.device.installed_session_id
            && let Some(s) = db::session::find(conn, installed)?
        {
            poll.installed = Some(s.number);
        }
        Ok(poll)
    })
    .await
}

// ---- deployment -----------------------------------------------------------------------------

/// `GET deploymentBase/{action}`.
pub async fn deployment_base(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        let s = action::live(conn, &target, &number)?;
        if s.cancel_requested_at.is_some() || action::waits_for_consent(&s) || s.payload.is_none() {
            // the device should follow the cancel or consent link instead
            return Err(Error::not_found(format!("deployment of action {}", s.number)));
        }
        if action::is_active(&s)? {
            action::note_retrieved(conn, &s)?;
        }
        action::deployment_info(conn, &s, history)
    })
    .await
}

/// A DDI feedback body. Unknown fields (legacy `id`, `time`, …) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Feedback {
    pub status: FeedbackStatus,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedbackStatus {
    pub execution: Execution,
    pub result: FeedbackResult,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub details: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedbackResult {
    pub finished: Finished,
}

impl FeedbackStatus {
    fn report(&self) -> Report {
        Report { messages: self.details.clone().unwrap_or_default(), code: self.code }
    }
}

/// `POST deploymentBase/{action}/feedback`.
pub async fn deployment_feedback_for(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    number: String,
    feedback: Feedback,
) -> Result<()> {
    let limits = Limits::of(hub);
    let report = feedback.status.report();
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        report.check()?;
        let s = action::live(conn, &target, &number)?;
        if action::waits_for_consent(&s) {
            return Err(Error::not_found(format!("deployment of action {}", s.number)));
        }
        if !action::is_active(&s)? {
            return Err(Error::Gone(format!("action {} is closed", s.number)));
        }
        let status = &feedback.status;
        let effect = deployment_feedback(action::action_type(&s), status.execution, status.result.finished);
        action::deployment_report(conn, &limits, &target, &s, effect, &report)
    })
    .await
}

// ---- cancel ---------------------------------------------------------------------------------

/// `GET cancelAction/{action}`: the action number to stop (only while a cancel is pending).
pub async fn cancel_action(hub: &Hub, at: Address, auth: DdiAuth, number: String) -> Result<i64> {
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        let s = action::live(conn, &target, &number)?;
        if action::was_canceled(&s)? {
            return Ok(s.number); // hawkBit answers for CANCELED actions too
        }
        if s.cancel_requested_at.is_none() || !action::is_active(&s)? {
            return Err(Error::not_found(format!("cancellation of action {}", s.number)));
        }
        action::note_retrieved(conn, &s)?;
        Ok(s.number)
    })
    .await
}

/// `POST cancelAction/{action}/feedback`.
pub async fn cancel_feedback_for(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    number: String,
    feedback: Feedback,
) -> Result<()> {
    let limits = Limits::of(hub);
    let report = feedback.status.report();
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        report.check()?;
        let s = action::live(conn, &target, &number)?;
        if action::was_canceled(&s)? {
            return Ok(()); // a repeated confirmation (the first answer may have been lost)
        }
        if s.cancel_requested_at.is_none() || !action::is_active(&s)? {
            return Err(Error::MethodNotAllowed(format!("action {} is not being canceled", s.number)));
        }
        let effect = cancel_feedback(feedback.status.execution, feedback.status.result.finished);
        action::cancel_report(conn, &limits, &s, effect, &report)
    })
    .await
}

// ---- installed base -------------------------------------------------------------------------

/// `GET installedBase/{action}`: the action the device last installed.
pub async fn installed_base(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(hub, at, auth, Access::Read, move |conn, target| {
        let s = action::find(conn, &target, &number)?;
        if target.device.installed_session_id.as_deref() != Some(s.id.as_str()) {
            return Err(Error::not_found(format!("installed action {}", s.number)));
        }
        action::deployment_info(conn, &s, history)
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

pub async fn report_installed(hub: &Hub, at: Address, auth: DdiAuth, report: InstalledReport) -> Result<bool> {
    crate::domain::version::FirmwareVersion::parse_lenient("version", &report.version)?;
    as_device(hub, at, auth, Access::Read, move |conn, target| {
        action::report_installed(conn, &target, &report.name, &report.version)
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

pub async fn config_data(hub: &Hub, at: Address, auth: DdiAuth, body: ConfigData) -> Result<()> {
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        action::update_attributes(conn, &target, body.mode.unwrap_or_default(), &body.data)
    })
    .await
}

// ---- confirmation (consent) -----------------------------------------------------------------

/// `GET confirmationBase`: the auto-confirm state and the action waiting for consent.
pub struct ConfirmationBase {
    pub auto_confirm: Option<AutoConfirm>,
    pub waiting: Option<(i64, i64)>,
}

pub async fn confirmation_base(hub: &Hub, at: Address, auth: DdiAuth) -> Result<ConfirmationBase> {
    as_device(hub, at, auth, Access::ReadOrRegister, move |conn, target| {
        let waiting = action::waiting_for_consent(conn, &target)?;
        Ok(ConfirmationBase { auto_confirm: action::auto_confirm_of(&target.device), waiting })
    })
    .await
}

/// `GET confirmationBase/{action}`: the deployment awaiting consent.
pub async fn confirmation_action(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    number: String,
    history: i64,
) -> Result<DeploymentInfo> {
    as_device(hub, at, auth, Access::Read, move |conn, target| {
        let s = action::live(conn, &target, &number)?;
        if !action::waits_for_consent(&s)
            || s.cancel_requested_at.is_some()
            || !action::is_active(&s)?
            || s.payload.is_none()
        {
            return Err(Error::not_found(format!("confirmation of action {}", s.number)));
        }
        action::deployment_info(conn, &s, history)
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
pub async fn consent(hub: &Hub, at: Address, auth: DdiAuth, number: String, body: ConsentFeedback) -> Result<()> {
    let report = Report { messages: body.details.clone().unwrap_or_default(), code: body.code };
    let confirmed = body.confirmation == Consent::Confirmed;
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        report.check()?;
        let s = action::live(conn, &target, &number)?;
        action::consent(conn, &s, confirmed, &report)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActivateAutoConfirm {
    pub initiator: Option<String>,
    pub remark: Option<String>,
}

/// Turns auto-confirm on and gives consent to every action waiting for it.
pub async fn activate_auto_confirm(hub: &Hub, at: Address, auth: DdiAuth, body: ActivateAutoConfirm) -> Result<()> {
    as_device(hub, at, auth, Access::Write, move |conn, target| {
        action::activate_auto_confirm(conn, &target, body.initiator.clone(), body.remark.clone())
    })
    .await
}

pub async fn deactivate_auto_confirm(hub: &Hub, at: Address, auth: DdiAuth) -> Result<()> {
    as_device(hub, at, auth, Access::Read, move |conn, target| action::deactivate_auto_confirm(conn, &target)).await
}

// ---- artifacts ------------------------------------------------------------------------------

pub async fn artifacts(hub: &Hub, at: Address, auth: DdiAuth, module: String) -> Result<Vec<ArtifactInfo>> {
    as_device(hub, at, auth, Access::Read, move |conn, target| {
        let s = action::module_session(conn, &target, &module)?;
        action::artifacts_of(&s)
    })
    .await
}

/// The bytes of an artifact: the stored deliverable, or a small file attached to it (a
/// signature, a manifest) kept in the session's payload.
#[derive(Debug, Clone)]
pub enum ArtifactBody {
    Stored(Blob),
    Attached(String),
}

/// What to serve for an artifact download, and the session to note a full download on.
#[derive(Debug, Clone)]
pub struct ArtifactDownload {
    pub body: ArtifactBody,
    pub artifact: ArtifactInfo,
    pub session_id: String,
}

/// The answer is remembered for a moment (`service::recent`): a device fetching the
/// artifact in ranges asks again for every range.
pub async fn artifact(hub: &Hub, at: Address, auth: DdiAuth, module: String, file: String) -> Result<ArtifactDownload> {
    let credential = match &auth {
        DdiAuth::Target(token) => format!("TargetToken {token}"),
        DdiAuth::Gateway(token) => format!("GatewayToken {token}"),
        DdiAuth::None => return check_artifact(hub, at, auth, module, file).await,
    };
    let key = format!("{}/{}/{module}/{file} {credential}", at.tenant, at.controller_id);
    if let Some(found) = hub.recent_artifacts.get(&key) {
        return Ok(found);
    }
    let stamp = Stamp::now();
    let found = check_artifact(hub, at, auth, module, file).await?;
    hub.recent_artifacts.put(key, found.clone(), stamp);
    Ok(found)
}

async fn check_artifact(
    hub: &Hub,
    at: Address,
    auth: DdiAuth,
    module: String,
    file: String,
) -> Result<ArtifactDownload> {
    as_device(hub, at, auth, Access::Read, move |conn, target| {
        let s = action::module_session(conn, &target, &module)?;
        let artifact = action::artifacts_of(&s)?
            .into_iter()
            .find(|a| a.filename == file)
            .ok_or_else(|| Error::not_found(format!("artifact {file:?}")))?;
        if let Some((_, text)) = action::attached_files(&s)?.into_iter().find(|(name, _)| *name == file) {
            return Ok(ArtifactDownload { body: ArtifactBody::Attached(text), artifact, session_id: s.id });
        }
        let key = s.artifact_key.clone().ok_or_else(|| Error::not_found("artifact"))?;
        super::scrub::refuse_quarantined(conn, &key)?;
        Ok(ArtifactDownload {
            body: ArtifactBody::Stored(Blob {
                key,
                size: artifact.digests.size,
                etag: artifact.digests.sha1.clone(),
                filename: artifact.filename.clone(),
                modified: super::firmware::released_at(conn, s.target_firmware_id.as_deref())?,
            }),
            artifact,
            session_id: s.id,
        })
    })
    .await
}

/// A whole-artifact download goes into the history (hawkBit's DOWNLOAD row); range requests
/// never do each (a streaming client may send thousands, hawkBit #1249): the first of a
/// session notes that the download started, and every answer adds to its bytes served.
/// After a session's first range in this process, ranges are only counted in memory
/// (`service::tally`).
pub async fn note_download(hub: &Hub, session_id: String, uri: String, served: action::Served) -> Result<()> {
    if let action::Served::Range { bytes } = served
        && hub.tally.add(&session_id, bytes)
    {
        return Ok(());
    }
    let tally = hub.tally.clone();
    hub.db
        .run(move |conn| {
            // bookkeeping: it must not end the reuse of this download's link check
            crate::db::bookkeeping_transaction_retrying(conn, |conn| {
                action::note_download(conn, &session_id, &uri, served)
            })?;
            if let action::Served::Range { .. } = served {
                tally.written(&session_id);
            }
            Ok(())
        })
        .await
}
