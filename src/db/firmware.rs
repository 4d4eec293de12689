//! Firmware rows, their channel membership, and their image metadata.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{firmware, firmware_channels, models};

pub const STATE_DRAFT: &str = "draft";
pub const STATE_RELEASED: &str = "released";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = firmware)]
pub struct Firmware {
    pub id: String,
    pub model_id: String,
    pub version: String,
    pub state: String,
    pub filename: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub object_key: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub released_at: Option<NaiveDateTime>,
}

/// What an upload records about the stored image.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = firmware)]
pub struct ImageMeta {
    pub filename: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub object_key: Option<String>,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub model: Option<String>,
    pub channel: Option<String>,
    pub state: Option<String>,
    pub version: Option<String>,
    /// Only these firmware (by id).
    pub ids: Option<Vec<String>>,
    /// Only firmware of these products (the ones a caller may read); `None`: all.
    pub products: Option<Vec<String>>,
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Firmware>> {
    firmware::table.find(id).select(Firmware::as_select()).get_result(conn).optional()
}

crate::db::row_writes!(firmware, Firmware);

pub fn set_version(conn: &mut AnyConnection, id: &str, version: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(firmware::table.find(id).filter(firmware::state.eq(STATE_DRAFT)))
        .set((firmware::version.eq(version), firmware::updated_at.eq(now)))
        .execute(conn)
}

/// Records a stored image, only while the firmware is still a draft. Returns whether it did.
pub fn set_image_if_draft(conn: &mut AnyConnection, id: &str, meta: &ImageMeta) -> QueryResult<bool> {
    let n = diesel::update(firmware::table.find(id).filter(firmware::state.eq(STATE_DRAFT))).set(meta).execute(conn)?;
    Ok(n == 1)
}

/// draft → released, only with an image. Returns whether it did.
pub fn release(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        firmware::table.find(id).filter(firmware::state.eq(STATE_DRAFT)).filter(firmware::object_key.is_not_null()),
    )
    .set((firmware::state.eq(STATE_RELEASED), firmware::released_at.eq(now), firmware::updated_at.eq(now)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn list(conn: &mut AnyConnection, filter: &Filter, page: super::Page) -> QueryResult<(Vec<Firmware>, i64)> {
    let query = || {
        let mut q = firmware::table.inner_join(models::table).into_boxed();
        if let Some(m) = &filter.model {
            q = q.filter(firmware::model_id.eq(m.clone()));
        }
        if let Some(c) = &filter.channel {
            let members = firmware_channels::table
                .filter(firmware_channels::channel_id.eq(c.clone()))
                .select(firmware_channels::firmware_id);
            q = q.filter(firmware::id.eq_any(members));
        }
        if let Some(s) = &filter.state {
            q = q.filter(firmware::state.eq(s.clone()));
        }
        if let Some(v) = &filter.version {
            q = q.filter(firmware::version.eq(v.clone()));
        }
        if let Some(ids) = &filter.ids {
            q = q.filter(firmware::id.eq_any(ids.clone()));
        }
        if let Some(ids) = &filter.products {
            q = q.filter(models::product_id.eq_any(ids.clone()));
        }
        q
    };
    crate::db::page_of!(conn, query(), (firmware::created_at, firmware::id), Firmware::as_select(), page)
}

/// Firmware of a model in a channel, in the given states: the candidates for an update.
pub fn in_channel(
    conn: &mut AnyConnection,
    model_id: &str,
    channel_id: &str,
    states: &[&str],
) -> QueryResult<Vec<Firmware>> {
    let members = firmware_channels::table
        .filter(firmware_channels::channel_id.eq(channel_id))
        .select(firmware_channels::firmware_id);
    firmware::table
        .filter(firmware::model_id.eq(model_id))
        .filter(firmware::state.eq_any(states.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()))
        .filter(firmware::id.eq_any(members))
        .select(Firmware::as_select())
        .load(conn)
}

pub fn find_by_model_version(conn: &mut AnyConnection, model_id: &str, version: &str) -> QueryResult<Option<Firmware>> {
    firmware::table
        .filter(firmware::model_id.eq(model_id))
        .filter(firmware::version.eq(version))
        .select(Firmware::as_select())
        .get_result(conn)
        .optional()
}

/// Channel ids of each of `ids`, as (firmware id, channel id) pairs.
pub fn channels_of(conn: &mut AnyConnection, ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    firmware_channels::table
        .filter(firmware_channels::firmware_id.eq_any(ids.to_vec()))
        .select((firmware_channels::firmware_id, firmware_channels::channel_id))
        .order((firmware_channels::firmware_id, firmware_channels::channel_id))
        .load(conn)
}

/// Makes `channel_ids` the exact channel set of a firmware.
pub fn set_channels(conn: &mut AnyConnection, id: &str, channel_ids: &[String]) -> QueryResult<()> {
    diesel::delete(firmware_channels::table.filter(firmware_channels::firmware_id.eq(id))).execute(conn)?;
    for channel_id in channel_ids {
        diesel::insert_into(firmware_channels::table)
            .values((firmware_channels::firmware_id.eq(id), firmware_channels::channel_id.eq(channel_id)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn touch(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(firmware::table.find(id)).set(firmware::updated_at.eq(now)).execute(conn).map(drop)
}

/// How many firmware have an image in the object store.
pub fn count_with_image(conn: &mut AnyConnection) -> QueryResult<i64> {
    firmware::table.filter(firmware::object_key.is_not_null()).count().get_result(conn)
}

/// The object keys of every firmware image.
pub fn object_keys(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    firmware::table.filter(firmware::object_key.is_not_null()).select(firmware::object_key.assume_not_null()).load(conn)
}

/// The firmware whose image is stored in `object_key`.
pub fn with_object_key(conn: &mut AnyConnection, object_key: &str) -> QueryResult<Vec<Firmware>> {
    firmware::table.filter(firmware::object_key.eq(object_key)).select(Firmware::as_select()).load(conn)
}
