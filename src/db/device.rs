//! Device twins: identity, model, channel, installed version, attributes, last seen.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::devices;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct Device {
    pub id: String,
    pub product_id: String,
    pub device_id: String,
    pub name: Option<String>,
    pub model_id: Option<String>,
    pub channel_id: Option<String>,
    pub installed_firmware_id: Option<String>,
    pub installed_version: Option<String>,
    /// JSON object of string attributes.
    pub attributes: String,
    pub last_seen: Option<NaiveDateTime>,
    pub last_session_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// SHA-256 of the device's hawkBit target token.
    pub target_token_hash: Option<String>,
    /// Ask the device for its attributes (hawkBit `configData` link).
    pub attributes_requested: bool,
    /// Auto-confirm state (JSON), `None` when off.
    pub auto_confirm: Option<String>,
    /// The assigned session the device last installed (hawkBit `installedBase`).
    pub installed_session_id: Option<String>,
    /// The DMF thing's reply exchange; `None`: not a DMF thing.
    pub dmf_reply_to: Option<String>,
    /// The target token, sealed under the server key (DMF's `targetSecurityToken`).
    pub target_token_sealed: Option<String>,
    /// Its age X25519 recipient, for the `encrypt` step.
    pub age_recipient: Option<String>,
}

/// `Some(None)` clears a nullable column, `None` leaves it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = devices)]
pub struct DeviceChanges {
    pub name: Option<Option<String>>,
    pub model_id: Option<Option<String>>,
    pub channel_id: Option<Option<String>>,
    pub installed_firmware_id: Option<Option<String>>,
    pub installed_version: Option<Option<String>>,
    pub attributes: Option<String>,
    pub last_seen: Option<Option<NaiveDateTime>>,
    pub last_session_id: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
    pub target_token_hash: Option<Option<String>>,
    pub attributes_requested: Option<bool>,
    pub auto_confirm: Option<Option<String>>,
    pub installed_session_id: Option<Option<String>>,
    pub dmf_reply_to: Option<Option<String>>,
    pub target_token_sealed: Option<Option<String>>,
    pub age_recipient: Option<Option<String>>,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub product: Option<String>,
    pub model: Option<String>,
    pub channel: Option<String>,
    pub device_id: Option<String>,
    /// Part of the device id or the name, ignoring case.
    pub search: Option<String>,
    /// Only these devices (by id).
    pub ids: Option<Vec<String>>,
    pub products: Option<Vec<String>>,
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Device>> {
    devices::table.find(id).select(Device::as_select()).get_result(conn).optional()
}

pub fn find_by_device_id(conn: &mut AnyConnection, product_id: &str, device_id: &str) -> QueryResult<Option<Device>> {
    devices::table
        .filter(devices::product_id.eq(product_id))
        .filter(devices::device_id.eq(device_id))
        .select(Device::as_select())
        .get_result(conn)
        .optional()
}

/// The devices of every product with this `device_id`, oldest first.
pub fn by_device_id(conn: &mut AnyConnection, device_id: &str) -> QueryResult<Vec<Device>> {
    devices::table
        .filter(devices::device_id.eq(device_id))
        .order((devices::created_at, devices::id))
        .select(Device::as_select())
        .load(conn)
}

crate::db::row_writes!(devices, Device, DeviceChanges);

pub fn list(conn: &mut AnyConnection, filter: &Filter, page: super::Page) -> QueryResult<(Vec<Device>, i64)> {
    let query = || {
        let mut q = devices::table.into_boxed();
        if let Some(p) = &filter.product {
            q = q.filter(devices::product_id.eq(p.clone()));
        }
        if let Some(m) = &filter.model {
            q = q.filter(devices::model_id.eq(m.clone()));
        }
        if let Some(c) = &filter.channel {
            q = q.filter(devices::channel_id.eq(c.clone()));
        }
        if let Some(d) = &filter.device_id {
            q = q.filter(devices::device_id.eq(d.clone()));
        }
        if let Some(ids) = &filter.ids {
            q = q.filter(devices::id.eq_any(ids.clone()));
        }
        if let Some(text) = &filter.search {
            diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
            let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            q = q.filter(
                lower(devices::device_id)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(devices::name.assume_not_null()).like(pattern).escape('\\')),
            );
        }
        if let Some(ids) = &filter.products {
            q = q.filter(devices::product_id.eq_any(ids.clone()));
        }
        q
    };
    crate::db::page_of!(conn, query(), (devices::created_at, devices::id), Device::as_select(), page)
}

/// A device by the hash of its target token, within a product.
pub fn find_by_token_hash(conn: &mut AnyConnection, product_id: &str, hash: &str) -> QueryResult<Option<Device>> {
    devices::table
        .filter(devices::product_id.eq(product_id))
        .filter(devices::target_token_hash.eq(hash))
        .select(Device::as_select())
        .load(conn)
        .map(|rows| rows.into_iter().next())
}

/// Devices of a product in a channel, or with all the given attributes (assignment targets).
pub fn in_product(conn: &mut AnyConnection, product_id: &str, channel_id: Option<&str>) -> QueryResult<Vec<Device>> {
    let mut q = devices::table.filter(devices::product_id.eq(product_id)).into_boxed();
    if let Some(c) = channel_id {
        q = q.filter(devices::channel_id.eq(c.to_owned()));
    }
    q.order(devices::created_at).select(Device::as_select()).load(conn)
}

/// Every device's sealed target token (`devicehub reseal` seals them again).
pub fn sealed_tokens(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    devices::table
        .filter(devices::target_token_sealed.is_not_null())
        .select((devices::id, devices::target_token_sealed.assume_not_null()))
        .load(conn)
}
