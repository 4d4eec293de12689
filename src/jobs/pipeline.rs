//! The delivery pipeline: a procedure's steps, in order, each reading the previous output
//! (the first reads the firmware image) and writing the next. Outputs are
//! content-addressed by a hash of their inputs (image SHA-256 + the steps so far), so many
//! identical requests cost one run; a step that does not transform (`image`, `manifest`)
//! writes nothing and the deliverable may simply be the image itself.

use std::time::Duration;

use async_compression::Level;
use async_compression::tokio::bufread::GzipEncoder;
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use crate::db;
use crate::domain::procedure::Step;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::time;

/// One claimed pipeline job.
#[derive(Debug, Clone)]
pub struct Work {
    pub job_id: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub session_id: String,
    pub steps: Vec<Step>,
    pub confirm: bool,
    pub time_limit: Duration,
    pub model: String,
    pub version: String,
    pub image: ImageRef,
}

/// The firmware image the pipeline starts from.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub key: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub filename: String,
}

/// A step's output, and at the end the deliverable.
#[derive(Debug, Clone)]
pub struct Deliverable {
    pub key: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub filename: String,
    /// What the steps add to the session payload (e.g. `manifest`).
    pub extras: Map<String, Value>,
}

impl From<&ImageRef> for Deliverable {
    fn from(i: &ImageRef) -> Self {
        Deliverable {
            key: i.key.clone(),
            size: i.size,
            sha256: i.sha256.clone(),
            sha1: i.sha1.clone(),
            md5: i.md5.clone(),
            filename: i.filename.clone(),
            extras: Map::new(),
        }
    }
}

/// The cache key of the output after `steps`: what it was made from, nothing else.
pub fn cache_key(image_sha256: &str, steps: &[Step]) -> String {
    let steps = serde_json::to_string(steps).unwrap_or_default();
    hex::encode(Sha256::digest(format!("devicehub-pipeline-v1\n{image_sha256}\n{steps}").as_bytes()))
}

pub async fn run(state: &AppState, work: &Work) -> Result<Deliverable> {
    let key = cache_key(&work.image.sha256, &work.steps);
    if let Some(done) = cached(state, &key).await? {
        tracing::info!(session = %work.session_id, cache_key = %key, "pipeline output reused from the cache");
        return Ok(done);
    }
    let mut current = Deliverable::from(&work.image);
    let mut written = Vec::new();
    // Every run writes under names of its own: identical runs racing each other never
    // write one object (their outputs may differ byte for byte, e.g. gzip's), and the
    // database row decides which run's object a cache key means (`remember`).
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for (i, step) in work.steps.iter().enumerate() {
        current = match step {
            Step::Image => current,
            Step::Gzip { level } => {
                let out_key = format!("artifacts/{}/{run_id}", cache_key(&work.image.sha256, &work.steps[..=i]));
                let next = gzip(state, &current, &out_key, *level).await?;
                written.push(out_key);
                next
            }
            Step::Manifest => {
                let mut next = current;
                let manifest = json!({
                    "model": work.model,
                    "version": work.version,
                    "image_sha256": work.image.sha256,
                    "filename": next.filename,
                    "size": next.size,
                    "sha256": next.sha256,
                });
                next.extras.insert("manifest".into(), manifest);
                next
            }
        };
    }
    // Intermediate outputs are not needed once the last step has read them.
    for k in written.iter().filter(|k| **k != current.key) {
        state.storage.delete(k).await?;
    }
    remember(state, &key, current).await
}

/// A previous run's output for the same inputs, if its object is still there.
async fn cached(state: &AppState, key: &str) -> Result<Option<Deliverable>> {
    let k = key.to_owned();
    let Some(row) = state.db.run(move |conn| Ok(db::artifact::find(conn, &k)?)).await? else { return Ok(None) };
    if state.storage.size(&row.object_key).await? != u64::try_from(row.size).ok() {
        let k = key.to_owned();
        state.db.run(move |conn| Ok(db::artifact::delete(conn, &k)?)).await?;
        return Ok(None);
    }
    Ok(Some(from_row(row)?))
}

fn from_row(row: db::artifact::ArtifactRow) -> Result<Deliverable> {
    let extras: Map<String, Value> =
        serde_json::from_str(&row.extras).map_err(|e| Error::internal(format!("artifact extras: {e}")))?;
    let filename = extras.get("filename").and_then(Value::as_str).unwrap_or("firmware.bin").to_owned();
    let mut extras = extras;
    extras.remove("filename");
    Ok(Deliverable {
        key: row.object_key,
        size: row.size,
        sha256: row.sha256,
        sha1: row.sha1,
        md5: row.md5,
        filename,
        extras,
    })
}

async fn remember(state: &AppState, key: &str, d: Deliverable) -> Result<Deliverable> {
    let mut extras = d.extras.clone();
    extras.insert("filename".into(), d.filename.clone().into());
    let row = db::artifact::ArtifactRow {
        cache_key: key.to_owned(),
        object_key: d.key.clone(),
        size: d.size,
        sha256: d.sha256.clone(),
        sha1: d.sha1.clone(),
        md5: d.md5.clone(),
        extras: Value::Object(extras).to_string(),
        created_at: time::now(),
    };
    let kept = state.db.run(move |conn| Ok(db::artifact::insert_or_keep(conn, &row)?)).await?;
    if kept.object_key != d.key {
        // Another run recorded the same inputs first: serve theirs (the digests the session
        // keeps are the row's), and delete only our own object.
        tracing::info!(cache_key = %key, kept = %kept.object_key, "an identical run finished first; its output is used");
        state.storage.delete(&d.key).await?;
    }
    from_row(kept)
}

/// Reads an object as a stream, whatever the store.
async fn reader(state: &AppState, key: &str) -> Result<impl tokio::io::AsyncBufRead + Unpin + use<>> {
    let stream = state.storage.inner().get(&ObjectPath::from(key)).await?.into_stream();
    Ok(StreamReader::new(stream.map_err(std::io::Error::other)))
}

async fn gzip(state: &AppState, input: &Deliverable, out_key: &str, level: u32) -> Result<Deliverable> {
    let source = reader(state, &input.key).await?;
    let mut encoder = GzipEncoder::with_quality(source, Level::Precise(i32::try_from(level).unwrap_or(6)));
    let mut writer = state.storage.writer(out_key, u64::MAX).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match encoder.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                writer.abort().await;
                return Err(Error::internal(format!("gzip step: {e}")));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.write(&buf[..n]).await {
            writer.abort().await;
            return Err(e);
        }
    }
    let stored = writer.finish().await?;
    Ok(Deliverable {
        key: stored.key,
        size: i64::try_from(stored.size).map_err(|_| Error::internal("output too large"))?,
        sha256: stored.sha256,
        sha1: stored.sha1,
        md5: stored.md5,
        filename: format!("{}.gz", input.filename),
        extras: input.extras.clone(),
    })
}
