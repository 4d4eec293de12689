//! The Leitwert device-hub door's use-cases (seed 003): a device asks, the hub picks the
//! image, a worker prepares it, the device downloads and confirms; admins list sessions and
//! read their history. State changes go through the engine.

use serde::Deserialize;
use serde_json::Value;

use super::engine::{self, Details, Limits, NewSession, state_of};
use super::views::{EventView, HistoryEntry, SessionView, view};
use crate::db::session::Session;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::ids::validate_device_id;
use crate::domain::procedure::Timeouts;
use crate::domain::rights::Action;
use crate::domain::selection::{self, Candidate, Target};
use crate::domain::session::{Event, State};
use crate::domain::version::FirmwareVersion;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::auth::Credentials;
use crate::service::catalog::{self, named};
use crate::service::{Actor, ListParams, Listing, resolve, scrub, twin};
use crate::storage::Blob;
use crate::time;

/// What a device sends to `POST /api/v1/firmware-update/request`. Unknown fields are
/// ignored: bootloaders in the field send what they send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Default, Deserialize)]
pub struct SessionQuery {
    pub state: Option<String>,
    pub device: Option<String>,
    pub model: Option<String>,
    /// Product id or handle.
    pub product: Option<String>,
    /// Sessions delivering this firmware (id): an assignment's progress.
    pub firmware: Option<String>,
    /// `true`: only expired sessions, `false` (default): only live ones, `all`: both.
    pub expired: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

/// Whether the actor may `action` on a session of its product. A session of a product the
/// actor does not see answers exactly like one that does not exist (404); 403 is for one it
/// sees but may not act on.
pub fn require_in_product(actor: &Actor, s: &Session, action: Action) -> Result<()> {
    if !actor.sees(&s.product_id) {
        return Err(Error::not_found(format!("firmware-update session {:?}", s.id)));
    }
    actor.require_in(action, &s.product_id)
}

/// Who may see a session: its creator, and readers of its product.
fn require_visible(actor: &Actor, s: &Session) -> Result<()> {
    if s.creator_id == actor.user_id {
        return Ok(());
    }
    require_in_product(actor, s, Action::Read)
}

/// Who may start or confirm it: its creator, and those who may request updates there.
fn require_actionable(actor: &Actor, s: &Session) -> Result<()> {
    if s.creator_id == actor.user_id {
        return Ok(());
    }
    require_in_product(actor, s, Action::RequestUpdate)
}

/// The status poll: authentication and the read in one database round trip.
pub async fn get(hub: &Hub, credentials: &Credentials, id: String) -> Result<SessionView> {
    let credentials = credentials.clone();
    let hub_c = hub.clone();
    hub.db
        .run(move |conn| {
            let actor = credentials.authenticate_in(conn)?;
            let (s, creator) = engine::read_live(conn, &id)?;
            require_visible(&actor, &s)?;
            view(&hub_c, s, creator)
        })
        .await
}

pub async fn list(hub: &Hub, actor: &Actor, query: SessionQuery) -> Result<Listing<HistoryEntry>> {
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
    let actor = actor.clone();
    let hub_c = hub.clone();
    hub.db
        .run(move |conn| {
            let device = query.device.as_deref().map(|d| find_device_ref(conn, d)).transpose()?;
            let model =
                query.model.as_deref().map(|m| named::<catalog::Models>(conn, &actor, "model", m)).transpose()?;
            let product =
                query.product.as_deref().map(|p| named::<catalog::Product>(conn, &actor, "product", p)).transpose()?;
            let firmware = query.firmware.as_deref().map(|f| firmware_ref(conn, &actor, f)).transpose()?;
            let filter = db::session::Filter {
                state: session_state.map(|s| s.as_str().to_owned()),
                device: device.map(|d| d.id),
                model: model.map(|m| m.id),
                product: product.map(|p| p.id),
                target_firmware: firmware,
                products: only,
                expired,
            };
            let (rows, total) = db::session::list(conn, &filter, page)?;
            let items = rows
                .into_iter()
                .map(|(s, creator)| HistoryEntry::of(&hub_c, s, creator))
                .collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}

/// A firmware a filter names (by id), if the actor sees it: else an unknown reference.
fn firmware_ref(conn: &mut AnyConnection, actor: &Actor, raw: &str) -> Result<String> {
    let unknown = || Error::unprocessable("unknown_reference", format!("firmware: {raw:?} not found"));
    let id = uuid::Uuid::parse_str(raw).map_err(|_| unknown())?.to_string();
    let f = db::firmware::find(conn, &id)?.ok_or_else(unknown)?;
    let model = db::model::find(conn, &f.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
    if !actor.sees(&model.product_id) {
        return Err(unknown());
    }
    Ok(f.id)
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
    hub: &Hub,
    actor: &Actor,
    device: String,
    params: ListParams,
) -> Result<Listing<HistoryEntry>> {
    let d = {
        let actor = actor.clone();
        // by id or handle; a device of a product the caller does not see is not found
        hub.db.run(move |conn| crate::service::devices::find(conn, &actor, &device)).await?
    };
    actor.require_in(Action::Read, &d.product_id)?;
    let query = SessionQuery { device: Some(d.id), expired: Some("all".into()), list: params, ..Default::default() };
    list(hub, actor, query).await
}

/// A session as lists show it, expired ones included (the admin UI's session page), for
/// those who may see it.
pub async fn entry(hub: &Hub, actor: &Actor, id: String) -> Result<HistoryEntry> {
    let actor = actor.clone();
    let hub_c = hub.clone();
    hub.db
        .run(move |conn| {
            let s = engine::find_any(conn, &id)?;
            require_visible(&actor, &s)?;
            let (s, creator) = match s.expired_at {
                Some(_) => db::session::find_with_creator(conn, &s.id)?
                    .ok_or_else(|| Error::not_found(format!("firmware-update session {id:?}")))?,
                None => engine::read_live(conn, &s.id)?,
            };
            HistoryEntry::of(&hub_c, s, creator)
        })
        .await
}

pub async fn events(hub: &Hub, actor: &Actor, id: String) -> Result<Vec<EventView>> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let s = engine::find_any(conn, &id)?;
            require_visible(&actor, &s)?;
            Ok(db::session::events(conn, &s.id, 1000)?.into_iter().map(EventView::from).collect())
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
pub async fn deliverable(hub: &Hub, auth: DownloadAuth, id: String) -> Result<(Blob, String)> {
    let claims = match &auth {
        DownloadAuth::Link(token) => Some(hub.links.verify(token)?),
        DownloadAuth::Token(_) => None,
    };
    hub.db
        .run(move |conn| {
            let actor = match &auth {
                DownloadAuth::Token(credentials) => Some(credentials.authenticate_in(conn)?),
                DownloadAuth::Link(_) => None,
            };
            let (s, _) = engine::read_live(conn, &id)?;
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
            if let Some(key) = &s.artifact_key {
                scrub::refuse_quarantined(conn, key)?;
            }
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
            let blob = Blob {
                key: key.clone(),
                size: payload["size"].as_u64().unwrap_or_default(),
                etag: sha256.clone(),
                filename: payload["filename"].as_str().unwrap_or("firmware.bin").to_owned(),
                modified: crate::service::firmware::released_at(conn, s.target_firmware_id.as_deref())?,
            };
            Ok((blob, s.id))
        })
        .await
}

pub async fn start(hub: &Hub, actor: &Actor, id: String) -> Result<SessionView> {
    let actor = actor.clone();
    let hub_c = hub.clone();
    let limits = Limits::of(hub);
    let view = hub
        .db
        .run(move |conn| {
            let authorize = |s: &Session| require_actionable(&actor, s);
            let (s, creator) =
                engine::act(conn, &limits, &id, Event::Start, authorize, || Details::because("started"))?;
            view(&hub_c, s, creator)
        })
        .await?;
    if view.state == State::Queued.as_str() {
        hub.jobs_ready.notify_waiters();
    }
    Ok(view)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub success: bool,
}

pub async fn confirm(hub: &Hub, actor: &Actor, id: String, input: ConfirmRequest) -> Result<SessionView> {
    let actor = actor.clone();
    let hub_c = hub.clone();
    let limits = Limits::of(hub);
    let success = input.success;
    hub.db
        .run(move |conn| {
            let message =
                if success { "the device confirmed the update" } else { "the device reported a failed update" };
            let authorize = |s: &Session| require_actionable(&actor, s);
            let (s, creator) =
                engine::act(conn, &limits, &id, Event::Confirm { success }, authorize, || Details::because(message))?;
            if success && state_of(&s)? == State::Success {
                twin::record_installed(conn, &s)?;
            }
            view(&hub_c, s, creator)
        })
        .await
}

// ---- request ---------------------------------------------------------------------------

pub async fn request(hub: &Hub, actor: &Actor, input: UpdateRequest) -> Result<SessionView> {
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
    let hub_c = hub.clone();
    let defaults = hub.settings.timeouts;
    hub.db
        .run(move |conn| {
            let (s, creator) = write_transaction_retrying(conn, |conn| {
                open_session(conn, &actor, &input, current.as_ref(), &target, defaults)
            })?;
            view(&hub_c, s, creator)
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
    let model = named::<catalog::Models>(conn, actor, "model", &input.model)?;
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
    if let Some(f) = chosen {
        scrub::refuse_quarantined_image(conn, f)?;
    }
    let initial = if chosen.is_some() { State::Ready } else { State::UpToDate };

    let session_id = uuid::Uuid::new_v4().to_string();
    let device = match &input.device_id {
        Some(d) => Some(twin::touch(
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
    let row = engine::insert_session(
        conn,
        NewSession {
            id: session_id,
            state: initial,
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
    engine::log_event(conn, &row.id, now, "requested", None, Some(initial), Some(message))?;
    tracing::info!(session = %row.id, state = %initial, model = %model.tid, channel = %channel.tid, "firmware update requested");
    Ok((row, actor.username.clone()))
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
