//! Firmware: versions per model, channel membership, the image (streamed into the object
//! store while it is hashed), and the one-way draft → released step.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::NaiveDateTime;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::{Actor, ListParams, Listing};
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::rights::Action;
use crate::domain::version::FirmwareVersion;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::catalog::{self, named};
use crate::storage::keys;
use crate::time;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFirmware {
    pub model: String,
    pub version: String,
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareUpdate {
    /// Only while a draft.
    pub version: Option<String>,
    /// The exact channel set; allowed on released firmware (that is how a release is
    /// promoted from one track to another).
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FirmwareQuery {
    pub model: Option<String>,
    pub channel: Option<String>,
    pub state: Option<String>,
    pub version: Option<String>,
    /// Only these firmware (by id; for the doors' own lookups, not a query parameter).
    #[serde(skip)]
    pub ids: Option<Vec<String>>,
    #[serde(flatten)]
    pub list: ListParams,
}

#[derive(Debug, Serialize)]
pub struct FirmwareView {
    pub id: String,
    pub model: String,
    pub version: String,
    pub state: String,
    pub channels: Vec<String>,
    pub has_image: bool,
    pub filename: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub released_at: Option<NaiveDateTime>,
}

fn view(f: db::firmware::Firmware, channels: Vec<String>) -> FirmwareView {
    FirmwareView {
        id: f.id,
        model: f.model_id,
        version: f.version,
        state: f.state,
        channels,
        has_image: f.object_key.is_some(),
        filename: f.filename,
        size: f.size,
        sha256: f.sha256,
        sha1: f.sha1,
        md5: f.md5,
        created_at: f.created_at,
        updated_at: f.updated_at,
        released_at: f.released_at,
    }
}

fn load_view(conn: &mut AnyConnection, f: db::firmware::Firmware) -> Result<FirmwareView> {
    let channels = db::firmware::channels_of(conn, std::slice::from_ref(&f.id))?.into_iter().map(|(_, c)| c).collect();
    Ok(view(f, channels))
}

/// A firmware by id, with the product it belongs to; one in a product the actor does not see
/// is not found either.
fn find_with_product(conn: &mut AnyConnection, actor: &Actor, id: &str) -> Result<(db::firmware::Firmware, String)> {
    let not_found = || Error::not_found(format!("firmware {id:?}"));
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?.to_string();
    let f = db::firmware::find(conn, &id)?.ok_or_else(not_found)?;
    let model = db::model::find(conn, &f.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
    if !actor.sees(&model.product_id) {
        return Err(not_found());
    }
    Ok((f, model.product_id))
}

/// Resolves channel references; each must belong to `product_id`.
fn resolve_channels(conn: &mut AnyConnection, actor: &Actor, product_id: &str, refs: &[String]) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(refs.len());
    for r in refs {
        let channel = named::<catalog::Channels>(conn, actor, "channels", r)?;
        if channel.product_id != product_id {
            return Err(Error::unprocessable(
                "unknown_reference",
                format!("channels: channel '{}' belongs to another product than the model", channel.tid),
            ));
        }
        if !ids.contains(&channel.id) {
            ids.push(channel.id);
        }
    }
    Ok(ids)
}

fn duplicate_version(version: &FirmwareVersion) -> impl FnOnce(Error) -> Error + use<> {
    super::duplicate("firmware of this model", "version", &version.to_string())
}

pub async fn create(hub: &Hub, actor: &Actor, input: NewFirmware) -> Result<FirmwareView> {
    let version = FirmwareVersion::parse("version", &input.version)?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let model = named::<catalog::Models>(conn, &actor, "model", &input.model)?;
                actor.require_in(Action::Write, &model.product_id)?;
                let channels = resolve_channels(conn, &actor, &model.product_id, &input.channels)?;
                let now = time::now();
                let row = db::firmware::Firmware {
                    id: uuid::Uuid::new_v4().to_string(),
                    model_id: model.id,
                    version: version.to_string(),
                    state: db::firmware::STATE_DRAFT.to_owned(),
                    filename: None,
                    size: None,
                    sha256: None,
                    sha1: None,
                    md5: None,
                    object_key: None,
                    created_at: now,
                    updated_at: now,
                    released_at: None,
                };
                db::firmware::insert(conn, &row).map_err(Error::from).map_err(duplicate_version(&version))?;
                db::firmware::set_channels(conn, &row.id, &channels)?;
                Ok(view(row, channels))
            })
        })
        .await
}

pub async fn list(hub: &Hub, actor: &Actor, query: FirmwareQuery) -> Result<Listing<FirmwareView>> {
    let page = query.list.page()?;
    if let Some(s) = &query.state
        && s != db::firmware::STATE_DRAFT
        && s != db::firmware::STATE_RELEASED
    {
        return Err(Error::bad_request("invalid_query", "state must be draft or released"));
    }
    let version = query.version.as_deref().map(|v| FirmwareVersion::parse_lenient("version", v)).transpose()?;
    let only = actor.products_allowing(Action::Read);
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let model =
                query.model.as_deref().map(|m| named::<catalog::Models>(conn, &actor, "model", m)).transpose()?;
            let channel =
                query.channel.as_deref().map(|c| named::<catalog::Channels>(conn, &actor, "channel", c)).transpose()?;
            let filter = db::firmware::Filter {
                model: model.map(|m| m.id),
                channel: channel.map(|c| c.id),
                state: query.state,
                version: version.map(|v| v.to_string()),
                ids: query.ids,
                products: only,
            };
            let (rows, total) = db::firmware::list(conn, &filter, page)?;
            let ids: Vec<String> = rows.iter().map(|f| f.id.clone()).collect();
            let mut channels: HashMap<String, Vec<String>> = HashMap::new();
            for (fid, cid) in db::firmware::channels_of(conn, &ids)? {
                channels.entry(fid).or_default().push(cid);
            }
            let items = rows
                .into_iter()
                .map(|f| {
                    let c = channels.remove(&f.id).unwrap_or_default();
                    view(f, c)
                })
                .collect();
            Ok(Listing::new(items, total, page))
        })
        .await
}

pub async fn get(hub: &Hub, actor: &Actor, id: String) -> Result<FirmwareView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let (f, product) = find_with_product(conn, &actor, &id)?;
            actor.require_in(Action::Read, &product)?;
            load_view(conn, f)
        })
        .await
}

pub async fn update(hub: &Hub, actor: &Actor, id: String, input: FirmwareUpdate) -> Result<FirmwareView> {
    let version = input.version.as_deref().map(|v| FirmwareVersion::parse("version", v)).transpose()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let (f, product) = find_with_product(conn, &actor, &id)?;
                actor.require_in(Action::Write, &product)?;
                let now = time::now();
                if let Some(version) = &version
                    && version.to_string() != f.version
                {
                    let changed = db::firmware::set_version(conn, &f.id, &version.to_string(), now)
                        .map_err(Error::from)
                        .map_err(duplicate_version(version))?;
                    if changed == 0 {
                        return Err(released_conflict("its version cannot change"));
                    }
                }
                if let Some(refs) = &input.channels {
                    let channels = resolve_channels(conn, &actor, &product, refs)?;
                    db::firmware::set_channels(conn, &f.id, &channels)?;
                    db::firmware::touch(conn, &f.id, now)?;
                }
                let f = db::firmware::find(conn, &f.id)?.ok_or_else(|| Error::not_found("firmware"))?;
                load_view(conn, f)
            })
        })
        .await
}

fn released_conflict(what: &str) -> Error {
    Error::conflict("firmware_released", format!("the firmware is released: {what}")).with_extra("state", "released")
}

pub async fn delete(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    let key = hub
        .db
        .run(move |conn| {
            let (f, product) = find_with_product(conn, &actor, &id)?;
            actor.require_in(Action::Write, &product)?;
            db::firmware::delete(conn, &f.id).map_err(|e| match Error::from(e) {
                Error::Conflict { code: "in_use", .. } => {
                    Error::conflict("in_use", "the firmware is still referenced (by sessions or devices)")
                }
                other => other,
            })?;
            Ok(f.object_key)
        })
        .await?;
    if let Some(key) = key {
        hub.storage.delete(&key).await?;
    }
    Ok(())
}

pub async fn release(hub: &Hub, actor: &Actor, id: String) -> Result<FirmwareView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let (f, product) = find_with_product(conn, &actor, &id)?;
                actor.require_in(Action::Write, &product)?;
                if f.state == db::firmware::STATE_RELEASED {
                    // Releasing twice is a safe repeat: answer the current state.
                    return load_view(conn, f);
                }
                if f.object_key.is_none() {
                    return Err(Error::unprocessable("image_missing", "upload an image before releasing"));
                }
                db::firmware::release(conn, &f.id, time::now())?;
                let f = db::firmware::find(conn, &f.id)?.ok_or_else(|| Error::not_found("firmware"))?;
                load_view(conn, f)
            })
        })
        .await
}

/// A released firmware with its image, by id: what may be assigned to devices.
pub fn find_released(conn: &mut AnyConnection, actor: &Actor, id: &str) -> Result<db::firmware::Firmware> {
    let (f, _) = find_with_product(conn, actor, id)?;
    if f.state != db::firmware::STATE_RELEASED || f.object_key.is_none() {
        return Err(Error::conflict("firmware_not_released", "only released firmware can be assigned to devices")
            .with_extra("state", f.state));
    }
    super::scrub::refuse_quarantined_image(conn, &f)?;
    Ok(f)
}

/// When a firmware was released (a session's deliverable is `Last-Modified` then).
pub fn released_at(conn: &mut AnyConnection, id: Option<&str>) -> Result<Option<chrono::NaiveDateTime>> {
    let Some(id) = id else { return Ok(None) };
    Ok(db::firmware::find(conn, id)?.and_then(|f| f.released_at))
}

/// The stored image of a firmware, for readers of its product.
pub async fn image(hub: &Hub, actor: &Actor, id: String) -> Result<crate::storage::Blob> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let (f, product) = find_with_product(conn, &actor, &id)?;
            actor.require_in(Action::Read, &product)?;
            let (Some(key), Some(size), Some(sha256)) = (f.object_key, f.size, f.sha256) else {
                return Err(Error::not_found("the firmware has no image yet; its image"));
            };
            super::scrub::refuse_quarantined(conn, &key)?;
            Ok(crate::storage::Blob {
                key,
                size: u64::try_from(size).unwrap_or_default(),
                etag: sha256,
                filename: f.filename.unwrap_or_else(|| "firmware.bin".into()),
                modified: f.released_at,
            })
        })
        .await
}

/// What a client may say about the image it uploads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadOptions {
    /// Expected SHA-256 (hex); on mismatch nothing is kept and the answer is 422.
    pub sha256: Option<String>,
    /// The file name devices see (`Content-Disposition`, hawkBit artifact name).
    pub filename: Option<String>,
}

/// Streams an image into the object store. The previous image (if any) stays until the new
/// one is complete and recorded; a failed or rejected upload leaves nothing behind.
pub async fn upload_image<S, E>(
    hub: &Hub,
    actor: &Actor,
    id: String,
    options: UploadOptions,
    content_length: Option<u64>,
    mut body: S,
) -> Result<FirmwareView>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let expected = options.sha256.as_deref().map(parse_sha256).transpose()?;
    let filename = options.filename.as_deref().map(validate_filename).transpose()?;
    let limit = hub.settings.max_image_size;
    if content_length.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let actor_c = actor.clone();
    let id_c = id.clone();
    let (firmware, default_name) = hub
        .db
        .run(move |conn| {
            let (f, product) = find_with_product(conn, &actor_c, &id_c)?;
            actor_c.require_in(Action::Write, &product)?;
            if f.state == db::firmware::STATE_RELEASED {
                return Err(released_conflict("its image cannot be replaced"));
            }
            let model = db::model::find(conn, &f.model_id)?.ok_or_else(|| Error::internal("firmware without model"))?;
            let name = format!("{}-{}.bin", model.tid, f.version);
            Ok((f, name))
        })
        .await?;

    let key = keys::image(&firmware.id, &uuid::Uuid::new_v4().to_string());
    let mut writer = hub.storage.writer(&key, limit).await?;
    while let Some(chunk) = body.next().await {
        let result = match chunk {
            Ok(bytes) => writer.write(&bytes).await,
            Err(e) => Err(Error::bad_request("upload_interrupted", format!("the upload was interrupted: {e}"))),
        };
        if let Err(e) = result {
            writer.abort().await;
            return Err(match e {
                Error::PayloadTooLarge(_) => too_large(limit),
                other => other,
            });
        }
    }
    if writer.bytes_written() == 0 {
        writer.abort().await;
        return Err(Error::unprocessable("empty_image", "the image is empty"));
    }
    if let Some(expected) = &expected {
        let actual = writer.sha256_hex();
        if &actual != expected {
            writer.abort().await;
            return Err(Error::unprocessable(
                "checksum_mismatch",
                format!("the image's SHA-256 is {actual}, not the expected {expected}; nothing was kept"),
            ));
        }
    }
    let stored = writer.finish().await?;
    let digests = &stored.digests;
    tracing::info!(firmware = %firmware.id, key = %stored.key, size = digests.size, sha256 = %digests.sha256, "stored firmware image");

    let meta = db::firmware::ImageMeta {
        filename: Some(filename.unwrap_or(default_name)),
        size: Some(i64::try_from(digests.size).map_err(|_| too_large(limit))?),
        sha256: Some(digests.sha256.clone()),
        sha1: Some(digests.sha1.clone()),
        md5: Some(digests.md5.clone()),
        object_key: Some(stored.key.clone()),
        updated_at: time::now(),
    };
    let fid = firmware.id.clone();
    let recorded = hub
        .db
        .run(move |conn| {
            let recorded = db::firmware::set_image_if_draft(conn, &fid, &meta)?;
            let f = db::firmware::find(conn, &fid)?.ok_or_else(|| Error::not_found("firmware"))?;
            Ok((recorded, load_view(conn, f)?))
        })
        .await;
    match recorded {
        Ok((true, view)) => {
            if let Some(old) = firmware.object_key {
                hub.storage.delete(&old).await?;
            }
            Ok(view)
        }
        Ok((false, _)) => {
            // Released (or deleted) while we were uploading: keep nothing.
            hub.storage.delete(&stored.key).await?;
            Err(released_conflict("its image cannot be replaced"))
        }
        Err(e) => {
            hub.storage.delete(&stored.key).await?;
            Err(e)
        }
    }
}

fn too_large(limit: u64) -> Error {
    Error::PayloadTooLarge(format!("the image is larger than the limit of {limit} bytes (max_image_size)"))
}

fn parse_sha256(raw: &str) -> Result<String> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("sha256: expected 64 hexadecimal characters"));
    }
    Ok(lower)
}

/// A file name devices will see: no paths, no control characters, at most 255 bytes.
fn validate_filename(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 255
        && !raw.contains(['/', '\\', '"'])
        && !raw.chars().any(char::is_control)
        && raw != "."
        && raw != "..";
    if !ok {
        return Err(Error::invalid("filename: 1 to 255 characters, without '/', '\\', '\"' or control characters"));
    }
    Ok(raw.to_owned())
}
