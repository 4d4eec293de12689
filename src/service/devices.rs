//! Device twins as admins see and change them. Devices also update their own twin when
//! they ask for firmware (sessions) or report attributes (hawkBit configData).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Actor, ListParams, Listing, double_option};
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::ids::{validate_device_id, validate_name};
use crate::domain::rights::Action;
use crate::domain::version::FirmwareVersion;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::catalog::{self, named, named_in};
use crate::time;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub device_id: String,
    /// Needed unless `model` is given (the model names its product).
    pub product: Option<String>,
    pub model: Option<String>,
    pub channel: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    pub installed_version: Option<String>,
    /// The device's age X25519 public key (`age1…`), for the `encrypt` step.
    pub age_recipient: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdate {
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub channel: Option<Option<String>>,
    /// Replaces all attributes.
    pub attributes: Option<Map<String, Value>>,
    /// Marks the device as a DMF thing whose gateway listens on this AMQP exchange
    /// (assignments then go out over AMQP); `null` unmarks it.
    #[serde(default, deserialize_with = "double_option")]
    pub dmf_reply_to: Option<Option<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    pub age_recipient: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeviceQuery {
    pub product: Option<String>,
    pub model: Option<String>,
    pub channel: Option<String>,
    pub device_id: Option<String>,
    /// Part of the device id or the name, ignoring case.
    pub search: Option<String>,
    /// Only these devices (by id; for the doors' own lookups, not a query parameter).
    #[serde(skip)]
    pub ids: Option<Vec<String>>,
    #[serde(flatten)]
    pub list: ListParams,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub device_id: String,
    pub product: String,
    pub name: Option<String>,
    pub model: Option<String>,
    pub channel: Option<String>,
    pub installed_firmware: Option<String>,
    pub installed_version: Option<String>,
    pub attributes: Value,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub last_seen: Option<NaiveDateTime>,
    pub last_session: Option<String>,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
    /// Whether the device has a hawkBit target token (the token itself is shown only when
    /// it is made: on create and on rotation).
    pub has_target_token: bool,
    /// The DMF thing's reply exchange; `null`: not a DMF thing.
    pub dmf_reply_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_token: Option<String>,
    /// Its age X25519 public key, if set (the server never holds the identity).
    pub age_recipient: Option<String>,
}

pub fn view(d: db::device::Device) -> DeviceView {
    DeviceView {
        id: d.id,
        device_id: d.device_id,
        product: d.product_id,
        name: d.name,
        model: d.model_id,
        channel: d.channel_id,
        installed_firmware: d.installed_firmware_id,
        installed_version: d.installed_version,
        attributes: serde_json::from_str(&d.attributes).unwrap_or_else(|_| Value::Object(Map::new())),
        last_seen: d.last_seen,
        last_session: d.last_session_id,
        created_at: d.created_at,
        updated_at: d.updated_at,
        has_target_token: d.target_token_hash.is_some(),
        dmf_reply_to: d.dmf_reply_to,
        target_token: None,
        age_recipient: d.age_recipient,
    }
}

/// A hawkBit target token: 16 random bytes as 32 lowercase hex characters, the format
/// hawkBit generates (some provisioning scripts expect it).
pub fn generate_target_token() -> String {
    use rand::RngExt;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// A new device twin with nothing known about it yet, and its target token (returned once,
/// stored only as a hash). The admin API and DDI plug-and-play registration both use it.
pub fn new_device(product_id: String, device_id: String, now: chrono::NaiveDateTime) -> (db::device::Device, String) {
    let token = generate_target_token();
    let row = db::device::Device {
        id: uuid::Uuid::new_v4().to_string(),
        product_id,
        device_id,
        name: None,
        model_id: None,
        channel_id: None,
        installed_firmware_id: None,
        installed_version: None,
        attributes: "{}".to_owned(),
        last_seen: None,
        last_session_id: None,
        created_at: now,
        updated_at: now,
        target_token_hash: Some(crate::service::auth::hash_token(&token)),
        attributes_requested: true,
        auto_confirm: None,
        installed_session_id: None,
        dmf_reply_to: None,
        target_token_sealed: None,
        age_recipient: None,
    };
    (row, token)
}

/// What a device's sealed target token is bound to: its row.
pub fn token_context(device_row_id: &str) -> String {
    format!("device-target-token:{device_row_id}")
}

/// The target token sealed for storage (DMF sends it as `targetSecurityToken`), bound to
/// its device row.
pub fn seal_target_token(hub: &Hub, device_row_id: &str, token: &str) -> String {
    hub.sealer.seal(token.as_bytes(), &token_context(device_row_id))
}

/// A device's target token, for DMF's `targetSecurityToken`: opened from its sealed copy. A
/// device whose token exists only as a hash (made before tokens were sealed, or by DDI
/// plug-and-play or a seed-003 request) gets a new one here; the message that carries it
/// tells its gateway.
pub fn target_token(conn: &mut AnyConnection, hub: &Hub, device: &db::device::Device) -> Result<String> {
    if let Some(sealed) = &device.target_token_sealed {
        let token = String::from_utf8(hub.sealer.open(sealed, &token_context(&device.id))?)
            .map_err(|_| Error::internal("a sealed target token is not text"))?;
        if device.target_token_hash.as_deref() == Some(crate::service::auth::hash_token(&token).as_str()) {
            return Ok(token);
        }
    }
    let token = generate_target_token();
    store_target_token(conn, hub, &device.id, &token)?;
    tracing::info!(device = %device.device_id, "issued a target token for DMF (the device had none kept sealed)");
    Ok(token)
}

/// Stores a device's token: its hash (DDI checks it) and its sealed copy.
fn store_target_token(conn: &mut AnyConnection, hub: &Hub, device_row_id: &str, token: &str) -> Result<()> {
    let changes = db::device::DeviceChanges {
        target_token_hash: Some(Some(crate::service::auth::hash_token(token))),
        target_token_sealed: Some(Some(seal_target_token(hub, device_row_id, token))),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, device_row_id, &changes)?;
    Ok(())
}

/// Makes a new target token for a device; the old one stops working at once.
pub async fn rotate_target_token(hub: &Hub, actor: &Actor, id: String) -> Result<DeviceView> {
    let actor = actor.clone();
    let hub_c = hub.clone();
    hub.db
        .run(move |conn| {
            let d = find(conn, &actor, &id)?;
            actor.require_in(Action::Write, &d.product_id)?;
            let token = generate_target_token();
            // a DMF thing's gateway gets the new token with the next message
            store_target_token(conn, &hub_c, &d.id, &token)?;
            let mut v = view(find(conn, &actor, &d.id)?);
            v.target_token = Some(token);
            Ok(v)
        })
        .await
}

/// Checks a complete attribute map and returns it as the JSON text to store.
pub fn validate_attributes(attributes: &Map<String, Value>) -> Result<String> {
    use crate::domain::attributes::{AttributeError, MAX_ATTRIBUTES, validate};
    validate(attributes).map_err(|e| match e {
        AttributeError::TooMany => Error::invalid(format!("attributes: at most {MAX_ATTRIBUTES} entries")),
        other => other.into(),
    })?;
    serde_json::to_string(attributes).map_err(|e| Error::internal(e.to_string()))
}

/// Checks an age recipient and answers it in its canonical form.
fn validate_age_recipient(text: &str) -> Result<String> {
    crate::pipeline::steps::encrypt::parse_recipient(text)
        .map(|r| r.to_string())
        .map_err(|why| Error::invalid(format!("age_recipient: {why}")))
}

/// A device by id, or by its handle (its `device_id`) within the products the actor sees;
/// one in a product the actor does not see is not found either. A handle that names devices
/// in several of those products is ambiguous: 409 `ambiguous_device`, with the candidates'
/// ids in `candidates` (use one of them).
pub fn find(conn: &mut AnyConnection, actor: &Actor, id: &str) -> Result<db::device::Device> {
    let not_found = || Error::not_found(format!("device {id:?}"));
    if let Ok(uuid) = uuid::Uuid::parse_str(id)
        && let Some(d) = db::device::find(conn, &uuid.to_string())?.filter(|d| actor.sees(&d.product_id))
    {
        return Ok(d);
    }
    let mut found: Vec<db::device::Device> =
        db::device::by_device_id(conn, id)?.into_iter().filter(|d| actor.sees(&d.product_id)).collect();
    match found.len() {
        0 => Err(not_found()),
        1 => Ok(found.remove(0)),
        _ => {
            let candidates: Vec<String> = found.into_iter().map(|d| d.id).collect();
            Err(Error::conflict(
                "ambiguous_device",
                format!("device {id:?} exists in several of your products; name it by one of its ids"),
            )
            .with_extra("candidates", candidates))
        }
    }
}

pub async fn create(hub: &Hub, actor: &Actor, input: NewDevice) -> Result<DeviceView> {
    validate_device_id(&input.device_id)?;
    if let Some(name) = &input.name {
        validate_name("name", name)?;
    }
    let attributes = validate_attributes(&input.attributes)?;
    let age_recipient = input.age_recipient.as_deref().map(validate_age_recipient).transpose()?;
    let installed = input
        .installed_version
        .as_deref()
        .map(|v| FirmwareVersion::parse_lenient("installed_version", v))
        .transpose()?;
    let actor = actor.clone();
    let hub_c = hub.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let model =
                    input.model.as_deref().map(|m| named::<catalog::Models>(conn, &actor, "model", m)).transpose()?;
                let product_id = match (&model, &input.product) {
                    (Some(m), Some(p)) => {
                        let product = named::<catalog::Product>(conn, &actor, "product", p)?;
                        if product.id != m.product_id {
                            return Err(Error::unprocessable("unknown_reference", "model: belongs to another product"));
                        }
                        product.id
                    }
                    (Some(m), None) => m.product_id.clone(),
                    (None, Some(p)) => named::<catalog::Product>(conn, &actor, "product", p)?.id,
                    (None, None) => return Err(Error::invalid("product or model is required")),
                };
                actor.require_in(Action::Write, &product_id)?;
                let channel = input
                    .channel
                    .as_deref()
                    .map(|c| named_in::<catalog::Channels>(conn, &actor, "channel", c, &product_id))
                    .transpose()?;
                let (mut row, target_token) = new_device(product_id, input.device_id.clone(), time::now());
                row.target_token_sealed = Some(seal_target_token(&hub_c, &row.id, &target_token));
                row.name = input.name;
                row.model_id = model.map(|m| m.id);
                row.channel_id = channel.map(|c| c.id);
                row.installed_version = installed.map(|v| v.to_string());
                row.attributes = attributes;
                row.age_recipient = age_recipient;
                db::device::insert(conn, &row).map_err(Error::from).map_err(super::duplicate(
                    "device in this product",
                    "device_id",
                    &input.device_id,
                ))?;
                let mut v = view(row);
                v.target_token = Some(target_token);
                Ok(v)
            })
        })
        .await
}

pub async fn list(hub: &Hub, actor: &Actor, query: DeviceQuery) -> Result<Listing<DeviceView>> {
    let page = query.list.page()?;
    let only = actor.products_allowing(Action::Read);
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let product =
                query.product.as_deref().map(|p| named::<catalog::Product>(conn, &actor, "product", p)).transpose()?;
            let model =
                query.model.as_deref().map(|m| named::<catalog::Models>(conn, &actor, "model", m)).transpose()?;
            let channel =
                query.channel.as_deref().map(|c| named::<catalog::Channels>(conn, &actor, "channel", c)).transpose()?;
            let filter = db::device::Filter {
                product: product.map(|p| p.id),
                model: model.map(|m| m.id),
                channel: channel.map(|c| c.id),
                device_id: query.device_id,
                search: query.search.filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_owned()),
                ids: query.ids,
                products: only,
            };
            let (rows, total) = db::device::list(conn, &filter, page)?;
            Ok(Listing::new(rows.into_iter().map(view).collect(), total, page))
        })
        .await
}

pub async fn get(hub: &Hub, actor: &Actor, id: String) -> Result<DeviceView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let d = find(conn, &actor, &id)?;
            actor.require_in(Action::Read, &d.product_id)?;
            Ok(view(d))
        })
        .await
}

pub async fn update(hub: &Hub, actor: &Actor, id: String, input: DeviceUpdate) -> Result<DeviceView> {
    if let Some(Some(name)) = &input.name {
        validate_name("name", name)?;
    }
    let attributes = input.attributes.as_ref().map(validate_attributes).transpose()?;
    if let Some(Some(exchange)) = &input.dmf_reply_to
        && (exchange.trim().is_empty() || exchange.len() > 255 || exchange.chars().any(char::is_control))
    {
        return Err(Error::invalid("dmf_reply_to: an AMQP exchange name of 1 to 255 characters"));
    }
    let age_recipient = match &input.age_recipient {
        Some(Some(r)) => Some(Some(validate_age_recipient(r)?)),
        Some(None) => Some(None),
        None => None,
    };
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let d = find(conn, &actor, &id)?;
                actor.require_in(Action::Write, &d.product_id)?;
                let model_id = match &input.model {
                    Some(Some(m)) => {
                        Some(Some(named_in::<catalog::Models>(conn, &actor, "model", m, &d.product_id)?.id))
                    }
                    Some(None) => Some(None),
                    None => None,
                };
                let channel_id = match &input.channel {
                    Some(Some(c)) => {
                        Some(Some(named_in::<catalog::Channels>(conn, &actor, "channel", c, &d.product_id)?.id))
                    }
                    Some(None) => Some(None),
                    None => None,
                };
                let changes = db::device::DeviceChanges {
                    name: input.name.clone(),
                    model_id,
                    channel_id,
                    attributes,
                    dmf_reply_to: input.dmf_reply_to.clone(),
                    age_recipient: age_recipient.clone(),
                    updated_at: Some(time::now()),
                    ..Default::default()
                };
                db::device::update(conn, &d.id, &changes)?;
                Ok(view(find(conn, &actor, &d.id)?))
            })
        })
        .await
}

pub async fn delete(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let d = find(conn, &actor, &id)?;
                actor.require_in(Action::Write, &d.product_id)?;
                // a DMF thing's gateway is told THING_DELETED
                super::dmf::delete_device(conn, &d)
            })
        })
        .await?;
    hub.jobs_ready.notify_waiters();
    Ok(())
}

/// Asks the device for its attributes (hawkBit's request attributes update): the DDI poll
/// shows `configData`, a DMF thing gets `REQUEST_ATTRIBUTES_UPDATE`.
pub async fn request_attributes(hub: &Hub, actor: &Actor, id: String) -> Result<DeviceView> {
    let actor = actor.clone();
    let v = hub
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let d = find(conn, &actor, &id)?;
                actor.require_in(Action::Write, &d.product_id)?;
                super::dmf::request_attributes(conn, &d)?;
                Ok(view(find(conn, &actor, &d.id)?))
            })
        })
        .await?;
    hub.jobs_ready.notify_waiters();
    Ok(v)
}
