//! Firmware-update sessions (seed 003): a device asks, the hub picks the image, a worker
//! prepares it, the device downloads and confirms. Every state change goes through
//! `domain::session::transition` and is written as a conditional update, in the same
//! transaction as its side effects (the job on `start`, the event log, the device twin).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::auth::Credentials;
use super::{Actor, ListParams, Listing, resolve};
use crate::db::session::{Session, SessionEvent, StateChange};
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::ids::validate_device_id;
use crate::domain::procedure::{Step, Timeouts};
use crate::domain::rights::Action;
use crate::domain::selection::{self, Candidate, Target};
use crate::domain::session::{Event, Outcome, State, due_timeouts, transition};
use crate::domain::version::FirmwareVersion;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::storage::Blob;
use crate::time;

/// What a device sends to `POST /api/v1/firmware-update/request`. Unknown fields are
/// ignored: bootloaders in the field send what they send.
#[derive(Debug, Deserialize)]
pub struct UpdateRequest {
    /// Model id or handle.
    pub model: String,
    /// The device's own identity; creates or updates its twin.
    pub device_id: Option<String>,
    /// Delivery method id or handle; must match the procedure's.
    pub delivery_method: Option<String>,
    /// Delivery procedure handle (seed 003's name for it).
    pub delivery_procedure_tid: Option<String>,
    /// Delivery procedure id or handle.
    pub delivery_procedure: Option<String>,
    /// Channel id or handle; defaults to the device twin's channel.
    pub current_channel: Option<String>,
    pub current_firmware_version: Option<String>,
    pub allow_draft_firmware: Option<bool>,
    /// Ask for exactly this version (may be a downgrade) instead of the newest.
    pub target_firmware_version: Option<String>,
}

/// A session as devices see it: exactly seed 003's fields, plus `payload` once there is
/// something to say (the deliverable, or why it failed).
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub create_time: NaiveDateTime,
    pub creator: String,
    pub state: String,
    pub finished: bool,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub expiration_time: Option<NaiveDateTime>,
    pub delivery_procedure: String,
    pub current_firmware: Option<String>,
    pub target_firmware: Option<String>,
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// A session in a list or a device's history, where expired ones appear too.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub session: SessionView,
    pub expired: bool,
    /// For sessions an admin assigned: how hawkBit devices see them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionView>,
}

/// A session as a hawkBit action: its DDI id (a string, as DDI writes ids) and details.
#[derive(Debug, Serialize)]
pub struct ActionView {
    pub id: String,
    #[serde(rename = "type")]
    pub action_type: String,
    pub cancel_requested: bool,
    pub consent_required: bool,
    pub consented: bool,
}

impl HistoryEntry {
    pub fn of(state: &AppState, s: Session, creator: String) -> Result<HistoryEntry> {
        let expired = s.expired_at.is_some();
        let action = s.action_type.clone().map(|action_type| ActionView {
            id: s.number.to_string(),
            action_type,
            cancel_requested: s.cancel_requested_at.is_some(),
            consent_required: s.consent_required,
            consented: s.consented_at.is_some(),
        });
        Ok(HistoryEntry { session: view(state, s, creator)?, expired, action })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionQuery {
    pub state: Option<String>,
    pub device: Option<String>,
    pub model: Option<String>,
    /// `true`: only expired sessions, `false` (default): only live ones, `all`: both.
    pub expired: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(serialize_with = "time::rfc3339")]
    pub at: NaiveDateTime,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: Option<String>,
}

/// The job kind that runs a session's pipeline.
pub const PIPELINE_JOB: &str = "pipeline";

// ---- reading ---------------------------------------------------------------------------

fn state_of(s: &Session) -> Result<State> {
    s.state.parse().map_err(|_| Error::internal(format!("session {} has unknown state {:?}", s.id, s.state)))
}

pub fn timeouts_of(s: &Session) -> Result<Timeouts> {
    serde_json::from_str(&s.timeouts).map_err(|e| Error::internal(format!("session {} timeouts: {e}", s.id)))
}

pub fn steps_of(s: &Session) -> Result<Vec<Step>> {
    serde_json::from_str(&s.steps).map_err(|e| Error::internal(format!("session {} steps: {e}", s.id)))
}

/// Builds the view; a deliverable gets a freshly signed download link.
pub fn view(state: &AppState, s: Session, creator: String) -> Result<SessionView> {
    let st = state_of(&s)?;
    let payload = match (st, &s.payload) {
        (st, Some(stored)) if st.has_deliverable() => {
            let mut p: Map<String, Value> =
                serde_json::from_str(stored).map_err(|e| Error::internal(format!("stored payload: {e}")))?;
            let sha = s.artifact_sha256.clone().unwrap_or_default();
            let ttl = chrono::Duration::seconds(i64::try_from(state.settings.link_ttl_secs).unwrap_or(3600));
            let mut until = chrono::Utc::now() + ttl;
            if let Some(exp) = s.expires_at {
                until = until.min(exp.and_utc());
            }
            let token = state.links.sign(&s.id, &sha, until)?;
            p.insert(
                "download_link".into(),
                state.link(&format!("api/v1/firmware-update/{}/download?token={token}", s.id)).into(),
            );
            Some(Value::Object(p))
        }
        (State::Fail, _) => Some(json!({"reason": s.fail_reason.clone().unwrap_or_else(|| "failed".into())})),
        _ => None,
    };
    Ok(SessionView {
        id: s.id,
        create_time: s.created_at,
        creator,
        state: st.as_str().to_owned(),
        finished: st.is_finished(),
        expiration_time: s.expires_at,
        delivery_procedure: s.procedure_id,
        current_firmware: s.current_firmware_id,
        target_firmware: s.target_firmware_id,
        device: s.device_id,
        payload,
    })
}

/// Who may see a session: its creator, and readers of its product.
fn require_visible(actor: &Actor, s: &Session) -> Result<()> {
    if s.creator_id == actor.user_id {
        return Ok(());
    }
    actor.require_in(Action::Read, &s.product_id)
}

/// Who may start or confirm it: its creator, and those who may request updates there.
fn require_actionable(actor: &Actor, s: &Session) -> Result<()> {
    if s.creator_id == actor.user_id {
        return Ok(());
    }
    actor.require_in(Action::RequestUpdate, &s.product_id)
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("firmware-update session {id:?}"))
}

/// A live session by id with its creator's name, with due timers applied first (a read
/// never shows a state whose time has passed). Expired or unknown: 404.
pub fn load_live(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<(Session, String)> {
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| not_found(id))?.to_string();
    let (s, creator) = db::session::find_with_creator(conn, &parsed)?.ok_or_else(|| not_found(id))?;
    if s.expired_at.is_some() {
        return Err(not_found(id));
    }
    let s = apply_due_timers(conn, s, now)?.ok_or_else(|| not_found(id))?;
    Ok((s, creator))
}

/// [`load_live`] for readers: a plain read, and a write transaction only when a timer is
/// due (polls must not queue behind SQLite's single writer).
pub fn read_live(conn: &mut AnyConnection, id: &str) -> Result<(Session, String)> {
    let now = time::now();
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| not_found(id))?.to_string();
    let (s, creator) = db::session::find_with_creator(conn, &parsed)?.ok_or_else(|| not_found(id))?;
    if s.expired_at.is_some() {
        return Err(not_found(id));
    }
    if s.expires_at.is_some_and(|at| at <= now) {
        return write_transaction(conn, |conn| load_live(conn, id, now));
    }
    Ok((s, creator))
}

/// The status poll: authentication and the read in one database round trip.
pub async fn get(state: &AppState, credentials: &Credentials, id: String) -> Result<SessionView> {
    let credentials = credentials.clone();
    let st = state.clone();
    state
        .db
        .run(move |conn| {
            let actor = credentials.authenticate_in(conn)?;
            let (s, creator) = read_live(conn, &id)?;
            require_visible(&actor, &s)?;
            view(&st, s, creator)
        })
        .await
}

pub async fn list(state: &AppState, actor: &Actor, query: SessionQuery) -> Result<Listing<HistoryEntry>> {
    let page = query.list.page()?;
    let session_state = query.state.as_deref().map(str::parse::<State>).transpose()?;
    let expired = match query.expired.as_deref() {
        None | Some("false") => Some(false),
        Some("true") => Some(true),
        Some("all") => None,
        Some(other) => {
            return Err(Error::bad_request("invalid_query", format!("expired: {other:?} is not true, false or all")));
        }
    };
    let only = actor.products_allowing(Action::Read);
    let st = state.clone();
    state
        .db
        .run(move |conn| {
            let device = query.device.as_deref().map(|d| find_device_ref(conn, d)).transpose()?;
            let model = query
                .model
                .as_deref()
                .map(|m| resolve(conn, "model", "model", m, db::model::find_by_ref))
                .transpose()?;
            let filter = db::session::Filter {
                state: session_state.map(|s| s.as_str().to_owned()),
                device: device.map(|d| d.id),
                model: model.map(|m| m.id),
                products: only,
                expired,
            };
            let (rows, total) = db::session::list(conn, &filter, page)?;
            let items =
                rows.into_iter().map(|(s, creator)| HistoryEntry::of(&st, s, creator)).collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}

/// A device by its UUID (query filters name devices by id).
fn find_device_ref(conn: &mut AnyConnection, raw: &str) -> Result<db::device::Device> {
    let id = uuid::Uuid::parse_str(raw)
        .map_err(|_| Error::unprocessable("unknown_reference", format!("device: {raw:?} is not a device id")))?;
    db::device::find(conn, &id.to_string())?
        .ok_or_else(|| Error::unprocessable("unknown_reference", format!("device: {raw:?} not found")))
}

/// A device's sessions, expired ones included: its update history.
pub async fn device_history(
    state: &AppState,
    actor: &Actor,
    device: String,
    params: ListParams,
) -> Result<Listing<HistoryEntry>> {
    let d = {
        let device = device.clone();
        state
            .db
            .run(move |conn| find_device_ref(conn, &device).map_err(|_| Error::not_found(format!("device {device:?}"))))
            .await?
    };
    actor.require_in(Action::Read, &d.product_id)?;
    let query = SessionQuery { device: Some(d.id), expired: Some("all".into()), list: params, ..Default::default() };
    list(state, actor, query).await
}

pub async fn events(state: &AppState, actor: &Actor, id: String) -> Result<Vec<EventView>> {
    let actor = actor.clone();
    state
        .db
        .run(move |conn| {
            let parsed = uuid::Uuid::parse_str(&id).map_err(|_| not_found(&id))?.to_string();
            let s = db::session::find(conn, &parsed)?.ok_or_else(|| not_found(&id))?;
            require_visible(&actor, &s)?;
            Ok(db::session::events(conn, &s.id, 1000)?
                .into_iter()
                .map(|e| EventView {
                    at: e.at,
                    kind: e.kind,
                    from_state: e.from_state,
                    to_state: e.to_state,
                    message: e.message,
                })
                .collect())
        })
        .await
}

// ---- downloads -------------------------------------------------------------------------

/// How a download is authorised: a user's token, or the signed link from the payload.
pub enum DownloadAuth {
    Token(Credentials),
    Link(String),
}

/// The deliverable of a live session, if the caller may have it.
pub async fn deliverable(state: &AppState, auth: DownloadAuth, id: String) -> Result<Blob> {
    let claims = match &auth {
        DownloadAuth::Link(token) => Some(state.links.verify(token)?),
        DownloadAuth::Token(_) => None,
    };
    state
        .db
        .run(move |conn| {
            let actor = match &auth {
                DownloadAuth::Token(credentials) => Some(credentials.authenticate_in(conn)?),
                DownloadAuth::Link(_) => None,
            };
            let (s, _) = read_live(conn, &id)?;
            match (&actor, &claims) {
                (Some(actor), _) => require_visible(actor, &s)?,
                (None, Some(c)) if c.sub != s.id => {
                    return Err(Error::forbidden("the download link belongs to another session"));
                }
                (None, Some(c)) if Some(&c.art) != s.artifact_sha256.as_ref() => {
                    return Err(Error::forbidden("the download link is for an older deliverable of this session"));
                }
                (None, _) => {}
            }
            let st = state_of(&s)?;
            let (Some(key), Some(sha256), Some(payload)) = (&s.artifact_key, &s.artifact_sha256, &s.payload) else {
                return Err(Error::conflict(
                    "no_deliverable",
                    format!("the session is in state {st}; nothing to download yet"),
                )
                .with_extra("state", st.as_str()));
            };
            if !st.has_deliverable() {
                return Err(Error::conflict(
                    "no_deliverable",
                    format!("the session is in state {st}; nothing to download"),
                )
                .with_extra("state", st.as_str()));
            }
            let payload: Value = serde_json::from_str(payload).map_err(|e| Error::internal(format!("payload: {e}")))?;
            Ok(Blob {
                key: key.clone(),
                size: payload["size"].as_u64().unwrap_or_default(),
                etag: sha256.clone(),
                filename: payload["filename"].as_str().unwrap_or("firmware.bin").to_owned(),
            })
        })
        .await
}

// ---- transitions -----------------------------------------------------------------------

/// The result of applying an event.
#[derive(Debug)]
pub enum Applied {
    Moved(Session),
    Repeated(Session),
    Expired,
    /// Another writer changed the session first; reload and decide again.
    Lost,
}

/// What else a transition writes, and why.
#[derive(Debug, Default)]
pub struct Details {
    pub message: Option<String>,
    pub change: StateChange,
}

impl Details {
    pub fn because(message: impl Into<String>) -> Details {
        Details { message: Some(message.into()), change: StateChange::default() }
    }
}

pub fn log_event(
    conn: &mut AnyConnection,
    session_id: &str,
    at: NaiveDateTime,
    kind: &str,
    from: Option<State>,
    to: Option<State>,
    message: Option<String>,
) -> Result<()> {
    db::session::add_event(
        conn,
        &SessionEvent {
            // v7: time-ordered, so events of the same microsecond keep their order
            id: uuid::Uuid::now_v7().to_string(),
            session_id: session_id.to_owned(),
            at,
            kind: kind.to_owned(),
            from_state: from.map(|s| s.as_str().to_owned()),
            to_state: to.map(|s| s.as_str().to_owned()),
            message,
        },
    )?;
    Ok(())
}

/// Applies `event` at time `at` through the transition table, as a conditional update
/// with its side effects. Must run inside a write transaction.
pub fn apply(
    conn: &mut AnyConnection,
    app: &JobSettings,
    s: &Session,
    event: Event,
    at: NaiveDateTime,
    details: Details,
) -> Result<Applied> {
    let from = state_of(s)?;
    let outcome = transition(from, event).map_err(|c| c.into_error())?;
    match outcome {
        Outcome::Repeat => Ok(Applied::Repeated(s.clone())),
        Outcome::Expire => {
            let change = StateChange { expired_at: Some(Some(at)), updated_at: Some(at), ..StateChange::default() };
            if !db::session::change_state_if(conn, &s.id, from.as_str(), &change)? {
                return Ok(Applied::Lost);
            }
            log_event(conn, &s.id, at, "expired", Some(from), None, details.message)?;
            Ok(Applied::Expired)
        }
        Outcome::Move(to) => {
            let timeouts = timeouts_of(s)?;
            let mut change = details.change;
            change.state = Some(to.as_str().to_owned());
            change.expires_at = Some(to.expires_at(at, &timeouts));
            change.updated_at = Some(at);
            if to == State::Fail {
                change.fail_reason = Some(details.message.clone().or_else(|| Some("failed".into())));
            }
            if !db::session::change_state_if(conn, &s.id, from.as_str(), &change)? {
                return Ok(Applied::Lost);
            }
            if from == State::Queued && to == State::Fail {
                db::job::delete_for_session(conn, &s.id)?;
            }
            if to == State::Queued {
                enqueue_pipeline(conn, app, &s.id, at)?;
            }
            log_event(conn, &s.id, at, "transition", Some(from), Some(to), details.message)?;
            let moved = db::session::find(conn, &s.id)?.ok_or_else(|| Error::internal("session vanished"))?;
            // Every door's start (a device's /start, an admin's assignment) obeys the queue
            // limit: one that finds the queue full goes on to fail in the same transaction.
            if to == State::Queued && db::job::count(conn)? > i64::try_from(app.queue_limit).unwrap_or(i64::MAX) {
                let reason = Details::because("queueing error: the queue is full");
                return apply(conn, app, &moved, Event::QueueError, at, reason);
            }
            Ok(Applied::Moved(moved))
        }
    }
}

/// What transitions need to know about the job queue.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    pub queue_limit: u64,
    pub max_attempts: u32,
}

impl JobSettings {
    pub fn of(state: &AppState) -> JobSettings {
        JobSettings { queue_limit: state.settings.queue_limit, max_attempts: state.settings.job_max_attempts }
    }
}

fn enqueue_pipeline(conn: &mut AnyConnection, app: &JobSettings, session_id: &str, at: NaiveDateTime) -> Result<()> {
    let job = db::job::Job {
        id: uuid::Uuid::now_v7().to_string(),
        kind: PIPELINE_JOB.to_owned(),
        session_id: Some(session_id.to_owned()),
        payload: json!({"session": session_id}).to_string(),
        run_at: at,
        attempts: 0,
        max_attempts: i32::try_from(app.max_attempts).unwrap_or(i32::MAX),
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: at,
    };
    db::job::enqueue(conn, &job)?;
    Ok(())
}

/// Fires every timer of `s` that is due by `now`. `None`: the session's life is over.
pub fn apply_due_timers(conn: &mut AnyConnection, mut s: Session, now: NaiveDateTime) -> Result<Option<Session>> {
    // The timers never enqueue, so the job settings do not matter here.
    let app = JobSettings { queue_limit: 0, max_attempts: 1 };
    for _ in 0..8 {
        let timeouts = timeouts_of(&s)?;
        let Some(&(_, at)) = due_timeouts(state_of(&s)?, s.expires_at, now, &timeouts).first() else {
            return Ok(Some(s));
        };
        let message = match state_of(&s)? {
            State::Queued => {
                Some(format!("queueing error: no worker took the job within {} s", timeouts.queued.unwrap_or_default()))
            }
            State::Created => Some("the device did not confirm in time".to_owned()),
            _ => Some("timeout".to_owned()),
        };
        match apply(conn, &app, &s, Event::Timeout, at, Details { message, ..Details::default() })? {
            Applied::Moved(next) => s = next,
            Applied::Expired => return Ok(None),
            Applied::Repeated(same) => return Ok(Some(same)),
            Applied::Lost => match db::session::find(conn, &s.id)? {
                Some(fresh) if fresh.expired_at.is_none() => s = fresh,
                _ => return Ok(None),
            },
        }
    }
    Ok(Some(s))
}

/// Loads a live session and applies an API event, retrying if another writer got there
/// first. Returns the session as it is afterwards.
fn act(
    conn: &mut AnyConnection,
    app: &JobSettings,
    actor: &Actor,
    id: &str,
    event: Event,
    details: impl Fn() -> Details,
) -> Result<(Session, String)> {
    for _ in 0..3 {
        let outcome = write_transaction::<_, Error, _>(conn, |conn| {
            let now = time::now();
            let (s, creator) = load_live(conn, id, now)?;
            require_actionable(actor, &s)?;
            Ok((apply(conn, app, &s, event, now, details())?, creator))
        })?;
        match outcome {
            (Applied::Moved(s) | Applied::Repeated(s), creator) => return Ok((s, creator)),
            (Applied::Expired, _) => return Err(not_found(id)),
            (Applied::Lost, _) => continue,
        }
    }
    Err(Error::conflict("concurrent_update", "the session kept changing; try again"))
}

pub async fn start(state: &AppState, actor: &Actor, id: String) -> Result<SessionView> {
    let actor = actor.clone();
    let st = state.clone();
    let app = JobSettings::of(state);
    let view = state
        .db
        .run(move |conn| {
            let (s, creator) = act(conn, &app, &actor, &id, Event::Start, || Details::because("started"))?;
            view(&st, s, creator)
        })
        .await?;
    if view.state == State::Queued.as_str() {
        state.jobs_ready.notify_waiters();
    }
    Ok(view)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub success: bool,
}

pub async fn confirm(state: &AppState, actor: &Actor, id: String, input: ConfirmRequest) -> Result<SessionView> {
    let actor = actor.clone();
    let st = state.clone();
    let app = JobSettings::of(state);
    let success = input.success;
    state
        .db
        .run(move |conn| {
            let message =
                if success { "the device confirmed the update" } else { "the device reported a failed update" };
            let (s, creator) = act(conn, &app, &actor, &id, Event::Confirm { success }, || Details::because(message))?;
            if success && state_of(&s)? == State::Success {
                record_installed(conn, &s)?;
            }
            view(&st, s, creator)
        })
        .await
}

/// After a confirmed success the device runs the target firmware: say so in its twin.
fn record_installed(conn: &mut AnyConnection, s: &Session) -> Result<()> {
    let (Some(device_id), Some(target)) = (&s.device_id, &s.target_firmware_id) else { return Ok(()) };
    let Some(fw) = db::firmware::find(conn, target)? else { return Ok(()) };
    let changes = db::device::DeviceChanges {
        installed_firmware_id: Some(Some(fw.id)),
        installed_version: Some(Some(fw.version)),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, device_id, &changes)?;
    Ok(())
}

// ---- request ---------------------------------------------------------------------------

pub async fn request(state: &AppState, actor: &Actor, input: UpdateRequest) -> Result<SessionView> {
    if let Some(d) = &input.device_id {
        validate_device_id(d)?;
    }
    let current = input
        .current_firmware_version
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .map(|v| FirmwareVersion::parse_lenient("current_firmware_version", v))
        .transpose()?;
    let target = match input.target_firmware_version.as_deref() {
        Some(v) => Target::Exact(FirmwareVersion::parse_lenient("target_firmware_version", v)?),
        None => Target::Newest,
    };
    let actor = actor.clone();
    let st = state.clone();
    let defaults = state.settings.timeouts;
    state
        .db
        .run(move |conn| {
            let (s, creator) = write_transaction(conn, |conn| {
                open_session(conn, &actor, &input, current.as_ref(), &target, defaults)
            })?;
            view(&st, s, creator)
        })
        .await
}

fn open_session(
    conn: &mut AnyConnection,
    actor: &Actor,
    input: &UpdateRequest,
    current: Option<&FirmwareVersion>,
    target: &Target,
    defaults: Timeouts,
) -> Result<(Session, String)> {
    let now = time::now();
    let model = resolve(conn, "model", "model", &input.model, db::model::find_by_ref)?;
    actor.require_in(Action::RequestUpdate, &model.product_id)?;
    let drafts = input.allow_draft_firmware.unwrap_or(false);
    if drafts {
        actor.require_in(Action::UseDrafts, &model.product_id)?;
    }
    let procedure = find_procedure(conn, input)?;

    let existing_device = match &input.device_id {
        Some(d) => db::device::find_by_device_id(conn, &model.product_id, d)?,
        None => None,
    };
    let channel = match (&input.current_channel, &existing_device) {
        (Some(c), _) => {
            let channel = resolve(conn, "channel", "current_channel", c, db::channel::find_by_ref)?;
            if channel.product_id != model.product_id {
                return Err(Error::unprocessable(
                    "unknown_reference",
                    format!("current_channel: channel '{}' belongs to another product than the model", channel.tid),
                ));
            }
            channel
        }
        (None, Some(d)) if d.channel_id.is_some() => {
            let id = d.channel_id.clone().unwrap_or_default();
            db::channel::find(conn, &id)?.ok_or_else(|| Error::internal("device channel vanished"))?
        }
        (None, _) => return Err(Error::invalid("current_channel is required (the device has no channel on record)")),
    };

    let current_fw = match current {
        Some(v) => db::firmware::find_by_model_version(conn, &model.id, &v.to_string())?,
        None => None,
    };
    let states: &[&str] = if drafts {
        &[db::firmware::STATE_RELEASED, db::firmware::STATE_DRAFT]
    } else {
        &[db::firmware::STATE_RELEASED]
    };
    let pool = match target {
        Target::Newest => db::firmware::in_channel(conn, &model.id, &channel.id, states)?,
        Target::Exact(v) => {
            let all = db::firmware::list(
                conn,
                &db::firmware::Filter { model: Some(model.id.clone()), ..Default::default() },
                db::Page { limit: 10_000, offset: 0 },
            )?
            .0;
            let matching: Vec<_> = all
                .into_iter()
                .filter(|f| {
                    FirmwareVersion::parse("version", &f.version)
                        .is_ok_and(|fv| fv.as_semver().cmp_precedence(v.as_semver()).is_eq())
                })
                .collect();
            if matching.is_empty() {
                return Err(Error::unprocessable(
                    "unknown_reference",
                    format!("target_firmware_version: model '{}' has no firmware {v}", model.tid),
                ));
            }
            matching
        }
    };
    let candidates = pool
        .iter()
        .map(|f| {
            Ok(Candidate {
                version: FirmwareVersion::parse("version", &f.version)?,
                released: f.state == db::firmware::STATE_RELEASED,
                has_image: f.object_key.is_some(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let chosen = selection::choose(&candidates, current, drafts, target).and_then(|i| pool.get(i));
    let state = if chosen.is_some() { State::Ready } else { State::UpToDate };

    let session_id = uuid::Uuid::new_v4().to_string();
    let device = match &input.device_id {
        Some(d) => Some(touch_device(
            conn,
            existing_device,
            d,
            &model,
            &channel.id,
            current,
            current_fw.as_ref(),
            &session_id,
            now,
        )?),
        None => None,
    };
    let row = insert_session(
        conn,
        NewSession {
            id: session_id,
            state,
            creator_id: actor.user_id.clone(),
            product_id: model.product_id.clone(),
            model_id: model.id.clone(),
            channel_id: Some(channel.id.clone()),
            device_id: device,
            procedure: &procedure,
            confirm: procedure.confirm,
            defaults,
            current_firmware_id: current_fw.map(|f| f.id),
            current_version: current.map(ToString::to_string),
            target_firmware_id: chosen.map(|f| f.id.clone()),
            assignment: None,
            now,
        },
    )?;
    let message = match chosen {
        Some(f) => format!("target {} (current {})", f.version, current.map_or("none".into(), ToString::to_string)),
        None => "no newer firmware: up to date".to_owned(),
    };
    log_event(conn, &row.id, now, "requested", None, Some(state), Some(message))?;
    tracing::info!(session = %row.id, state = %state, model = %model.tid, channel = %channel.tid, "firmware update requested");
    Ok((row, actor.username.clone()))
}

/// What a new session is made of; see [`insert_session`].
pub struct NewSession<'a> {
    pub id: String,
    pub state: State,
    pub creator_id: String,
    pub product_id: String,
    pub model_id: String,
    pub channel_id: Option<String>,
    pub device_id: Option<String>,
    pub procedure: &'a db::delivery::DeliveryProcedure,
    /// Whether the device must confirm (assignments always do: the device reports `closed`).
    pub confirm: bool,
    /// The server's lifetimes; the procedure's own override them.
    pub defaults: Timeouts,
    pub current_firmware_id: Option<String>,
    pub current_version: Option<String>,
    pub target_firmware_id: Option<String>,
    pub assignment: Option<Assignment>,
    pub now: NaiveDateTime,
}

/// What makes a session a hawkBit action.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub action_type: crate::domain::ddi::ActionType,
    pub window: Option<(NaiveDateTime, NaiveDateTime)>,
    pub consent_required: bool,
}

/// Inserts a session with a fresh number, the procedure's steps and lifetimes frozen in.
pub fn insert_session(conn: &mut AnyConnection, n: NewSession<'_>) -> Result<Session> {
    let overrides: Timeouts =
        serde_json::from_str(&n.procedure.timeouts).map_err(|e| Error::internal(format!("procedure timeouts: {e}")))?;
    let mut timeouts = overrides.or(n.defaults);
    if let Some((_, end)) = n.assignment.as_ref().and_then(|a| a.window) {
        // the device may install only inside its window: the wait for its result starts
        // counting when the window closes, not when the deliverable is ready
        let until_closed = u64::try_from((end - n.now).num_seconds()).unwrap_or(0);
        timeouts.created = timeouts.created.map(|secs| secs.saturating_add(until_closed));
    }
    let row = Session {
        id: n.id,
        number: db::session::next_number(conn)?,
        state: n.state.as_str().to_owned(),
        creator_id: n.creator_id,
        product_id: n.product_id,
        model_id: n.model_id,
        channel_id: n.channel_id,
        device_id: n.device_id,
        procedure_id: n.procedure.id.clone(),
        current_firmware_id: n.current_firmware_id,
        current_version: n.current_version,
        target_firmware_id: n.target_firmware_id,
        steps: n.procedure.steps.clone(),
        confirm: n.confirm,
        timeouts: serde_json::to_string(&timeouts).map_err(|e| Error::internal(e.to_string()))?,
        payload: None,
        artifact_key: None,
        artifact_sha256: None,
        fail_reason: None,
        expires_at: n.state.expires_at(n.now, &timeouts),
        expired_at: None,
        created_at: n.now,
        updated_at: n.now,
        action_type: n.assignment.as_ref().map(|a| a.action_type.as_str().to_owned()),
        maintenance_start: n.assignment.as_ref().and_then(|a| a.window.map(|w| w.0)),
        maintenance_end: n.assignment.as_ref().and_then(|a| a.window.map(|w| w.1)),
        cancel_requested_at: None,
        consent_required: n.assignment.as_ref().is_some_and(|a| a.consent_required),
        consented_at: None,
    };
    db::session::insert(conn, &row)?;
    Ok(row)
}

pub fn find_procedure_by_refs(
    conn: &mut AnyConnection,
    procedure: Option<&str>,
    procedure_field: &str,
    method: Option<&str>,
) -> Result<db::delivery::DeliveryProcedure> {
    let method = method
        .map(|m| resolve(conn, "delivery method", "delivery_method", m, db::delivery::methods::find_by_ref))
        .transpose()?;
    let procedure = match (procedure, &method) {
        (Some(p), _) => resolve(conn, "delivery procedure", procedure_field, p, db::delivery::procedures::find_by_ref)?,
        (None, Some(m)) => {
            let (mut under, total) =
                db::delivery::procedures::list(conn, Some(&m.id), db::Page { limit: 2, offset: 0 })?;
            if total != 1 {
                return Err(Error::invalid(format!(
                    "{procedure_field} is required (the delivery method has more or fewer than one procedure)"
                )));
            }
            under.remove(0)
        }
        (None, None) => {
            let (mut all, total) = db::delivery::procedures::list(conn, None, db::Page { limit: 2, offset: 0 })?;
            if total != 1 {
                return Err(Error::invalid(format!("{procedure_field} is required")));
            }
            all.remove(0)
        }
    };
    if let Some(m) = method
        && m.id != procedure.delivery_method_id
    {
        return Err(Error::unprocessable(
            "unknown_reference",
            format!("delivery_method: procedure '{}' belongs to another delivery method", procedure.tid),
        ));
    }
    Ok(procedure)
}

fn find_procedure(conn: &mut AnyConnection, input: &UpdateRequest) -> Result<db::delivery::DeliveryProcedure> {
    let (named, field) = match (&input.delivery_procedure_tid, &input.delivery_procedure) {
        (Some(p), _) => (Some(p.as_str()), "delivery_procedure_tid"),
        (None, Some(p)) => (Some(p.as_str()), "delivery_procedure"),
        (None, None) => (None, "delivery_procedure_tid"),
    };
    if named.is_none() && input.delivery_method.is_none() {
        return Err(Error::invalid("delivery_procedure_tid is required"));
    }
    find_procedure_by_refs(conn, named, field, input.delivery_method.as_deref())
}

/// Creates or updates the device twin from what the device just told us.
#[expect(clippy::too_many_arguments, reason = "each argument is one fact the device reported")]
fn touch_device(
    conn: &mut AnyConnection,
    existing: Option<db::device::Device>,
    device_id: &str,
    model: &db::model::Model,
    channel_id: &str,
    current: Option<&FirmwareVersion>,
    current_fw: Option<&db::firmware::Firmware>,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<String> {
    match existing {
        Some(d) => {
            let changes = db::device::DeviceChanges {
                model_id: Some(Some(model.id.clone())),
                channel_id: Some(Some(channel_id.to_owned())),
                installed_firmware_id: current.map(|_| current_fw.map(|f| f.id.clone())),
                installed_version: current.map(|v| Some(v.to_string())),
                last_seen: Some(Some(now)),
                last_session_id: Some(Some(session_id.to_owned())),
                updated_at: Some(now),
                ..Default::default()
            };
            db::device::update(conn, &d.id, &changes)?;
            Ok(d.id)
        }
        None => {
            let row = db::device::Device {
                id: uuid::Uuid::new_v4().to_string(),
                product_id: model.product_id.clone(),
                device_id: device_id.to_owned(),
                name: None,
                model_id: Some(model.id.clone()),
                channel_id: Some(channel_id.to_owned()),
                installed_firmware_id: current_fw.map(|f| f.id.clone()),
                installed_version: current.map(ToString::to_string),
                attributes: "{}".to_owned(),
                last_seen: Some(now),
                last_session_id: Some(session_id.to_owned()),
                created_at: now,
                updated_at: now,
                target_token_hash: None,
                attributes_requested: true,
                auto_confirm: None,
                installed_session_id: None,
            };
            db::device::insert(conn, &row)?;
            Ok(row.id)
        }
    }
}
