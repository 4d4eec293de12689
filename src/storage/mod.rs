//! Object storage through `object_store`: local disk by default, S3 (`s3.rs`) when you
//! grow, in memory for tests; the rest of the code does not care which. Writes stream: [`ObjectWriter`] hashes and
//! counts bytes as they pass and the object becomes visible only when it is finished.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use md5::Md5;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, WriteMultipart};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::domain::digests::Digests;
use crate::error::{Error, Result, SpaceLatch};

mod redirect;
mod s3;

pub use redirect::Redirect;
mod blocks;
pub use blocks::DEFAULT_BUDGET as DEFAULT_DOWNLOAD_MAP_BUDGET;

/// Object keys. Firmware images get a fresh key per upload, so a reader of the previous
/// image is never cut off by a replacement.
pub mod keys {
    pub fn image(firmware_id: &str, upload_id: &str) -> String {
        format!("images/{firmware_id}/{upload_id}")
    }

    /// Written at start-up; `readyz` reads its metadata to check the store answers.
    pub const READY_MARKER: &str = ".devicehub";

    /// Written by `readyz` after a write found no space, to see whether one fits again.
    pub const SPACE_PROBE: &str = ".devicehub-space-probe";

    /// The store's identity: an id the database records too (`service::store_identity`).
    pub const STORE_ID: &str = ".devicehub-store-id";

    /// Where objects the database refers to live (everything else is the store's own).
    pub const OBJECT_PREFIXES: [&str; 2] = ["images/", "artifacts/"];
}

/// What `readyz` writes to see whether the store takes writes again: a page or so.
const SPACE_PROBE_LEN: usize = 4096;

/// Block size for reading local objects: a 1 MiB range is one read.
const READ_BLOCK: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    description: String,
    /// Set when a write found no space left; cleared by the next write that succeeds.
    full: Arc<SpaceLatch>,
    /// The directory of a local store (where unfinished uploads leave staging files).
    local_root: Option<PathBuf>,
    /// The bucket of an S3 store (presigned URLs, recorded multipart uploads).
    s3: Option<Arc<s3::S3>>,
    /// Where downloads are sent instead of being streamed (`redirect.rs`).
    redirect: Redirect,
    /// A local store's downloads: shared, capped maps of open files (`blocks`).
    downloads: Option<Arc<blocks::Blocks>>,
}

/// Streams `range` of a local file in 1 MiB blocks, each a read-only memory map of the
/// page cache handed to the response as it is (no copy into a buffer of ours). A block is
/// unmapped as soon as the response has written it, so a connection holds at most one
/// block mapped and memory does not grow with the image size. Objects are written to a
/// temporary file and renamed into place, never truncated, so a mapped file cannot shrink
/// under us. The file handle is this request's own.
fn read_file_blocks(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, std::io::Result<Bytes>> {
    let file = Arc::new(file);
    let state = (range.start, range.end);
    futures_util::stream::try_unfold(state, move |(start, end)| {
        let file = file.clone();
        async move {
            if start >= end {
                return Ok(None);
            }
            let want = (end - start).min(READ_BLOCK as u64);
            let block = tokio::task::spawn_blocking(move || map_block(&file, start, want))
                .await
                .map_err(std::io::Error::other)??;
            Ok(Some((block, (start + want, end))))
        }
    })
    .boxed()
}

/// Maps `len` bytes at `offset`. A map must start on a page boundary, so it starts at the
/// 64 KiB boundary below (a multiple of every common page size) and the block is a slice.
#[allow(unsafe_code)] // the one exception in the crate: see the SAFETY note
fn map_block(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Bytes> {
    const ALIGN: u64 = 64 * 1024;
    let aligned = offset - offset % ALIGN;
    let skip = usize::try_from(offset - aligned).map_err(std::io::Error::other)?;
    let total = usize::try_from(len).map_err(std::io::Error::other)? + skip;
    if file.metadata()?.len() < offset + len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the object is shorter than its size"));
    }
    // SAFETY: the map is read-only and the file is never truncated or rewritten in place
    // (see `read_file_blocks`).
    let map = unsafe { memmap2::MmapOptions::new().offset(aligned).len(total).populate().map(file)? };
    Ok(Bytes::from_owner(map).slice(skip..))
}

/// Whether a file name is object_store's staging name for an unfinished upload: the key's
/// name, `#`, and digits.
fn is_staging(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn sweep_staging_files(root: &Path, grace: Duration) -> Result<Vec<String>> {
    let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                folders.push(path);
                continue;
            }
            let stale = meta.modified().is_ok_and(|m| m < cutoff);
            if !stale || !is_staging(&entry.file_name().to_string_lossy()) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    removed.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
                    // the folder too, if that was its last file (as object_store's own cleanup does)
                    let _ = std::fs::remove_dir(&folder);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::internal(format!("removing {}: {e}", path.display()))),
            }
        }
    }
    Ok(removed)
}

/// A stored object as a download: where it is and what devices are told about it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub key: String,
    pub size: u64,
    /// The strong entity tag, unquoted: the hex SHA-256 (hawkBit's door uses the SHA-1,
    /// as hawkBit does).
    pub etag: String,
    pub filename: String,
    /// `Last-Modified`: when its firmware was released (none for a draft's image).
    pub modified: Option<chrono::NaiveDateTime>,
}

/// An object as a listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// When it was last written (UTC).
    pub modified: chrono::NaiveDateTime,
}

/// What a finished write knows about the bytes it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub digests: Digests,
}

impl Storage {
    /// `memory://`, `file:///abs/dir`, a plain directory path, or `s3://bucket/prefix`.
    pub fn from_url(url: &str) -> anyhow::Result<Storage> {
        Storage::open(url, &std::collections::BTreeMap::new())
    }

    /// Like [`Storage::from_url`]; an S3 store also takes `options` (object_store's
    /// `AmazonS3ConfigKey` names), over the `AWS_*` environment.
    pub fn open(url: &str, options: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Storage> {
        if url == "memory://" {
            return Ok(Storage::new(Arc::new(object_store::memory::InMemory::new()), url.to_owned(), None));
        }
        if url.starts_with("s3://") {
            let bucket = Arc::new(s3::S3::open(url, options)?);
            let mut storage = Storage::new(bucket.store(), url.to_owned(), None);
            storage.s3 = Some(bucket);
            return Ok(storage);
        }
        if url.contains("://") && !url.starts_with("file://") {
            anyhow::bail!(
                "unsupported object store {url:?} (expected a directory, file:///dir, s3://bucket/prefix or memory://)"
            );
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir).with_context(|| format!("creating object store directory {dir}"))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening object store directory {dir}"))?
            .with_automatic_cleanup(true);
        Ok(Storage::new(Arc::new(store), format!("file://{dir}"), Some(PathBuf::from(dir))))
    }

    fn new(store: Arc<dyn ObjectStore>, description: String, local_root: Option<PathBuf>) -> Storage {
        let downloads = local_root.clone().map(|root| Arc::new(blocks::Blocks::new(root, blocks::DEFAULT_BUDGET)));
        Storage { store, description, full: Arc::default(), local_root, s3: None, redirect: Redirect::Off, downloads }
    }

    /// Our error for a failed store operation; one that found no space is remembered.
    fn failed(&self, err: object_store::Error) -> Error {
        self.full.note(err.into())
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Starts a streaming write of at most `limit` bytes to `key`.
    pub async fn writer(&self, key: &str, limit: u64) -> Result<ObjectWriter> {
        let upload = match &self.s3 {
            Some(s3) => s3.upload(key).await.map_err(|e| self.full.note(e))?,
            None => self.store.put_multipart(&ObjectPath::from(key)).await.map_err(|e| self.failed(e))?,
        };
        Ok(ObjectWriter {
            upload: WriteMultipart::new(upload),
            full: self.full.clone(),
            key: key.to_owned(),
            limit,
            size: 0,
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            md5: Md5::new(),
        })
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        if let Some(downloads) = &self.downloads {
            downloads.forget(key);
        }
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Size of the object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams bytes `range` of an object, holding at most one block in memory.
    pub async fn read(&self, key: &str, range: Range<u64>) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
        let result = self.store.get_opts(&ObjectPath::from(key), options).await?;
        Ok(match result.payload {
            // object_store streams local files in 8 KiB reads, one blocking hop each; large
            // blocks keep a 2-core box near the disk's (or page cache's) speed.
            GetResultPayload::File(file, _) => read_file_blocks(file, range),
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        })
    }

    /// Streams bytes `range` of an object to a device. A local store serves it from shared,
    /// capped maps of files it keeps open (`storage::blocks`); other stores as [`Storage::read`].
    pub async fn download(&self, key: &str, range: Range<u64>) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        match &self.downloads {
            Some(downloads) if downloads.enabled() && blocks::Blocks::serves(key) => {
                downloads.read(key, range).await.map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Error::NotFound(format!("object {key} not found"))
                    } else {
                        Error::internal(format!("reading {key}: {e}"))
                    }
                })
            }
            _ => self.read(key, range).await,
        }
    }

    /// Caps the bytes all downloads from a local store keep mapped at once (past it blocks
    /// are read into small buffers instead), and how much is handed to the HTTP layer at once.
    pub fn tune_downloads(&self, map_budget: usize, chunk: usize) {
        if let Some(downloads) = &self.downloads {
            downloads.set_budget(map_budget);
            downloads.set_chunk(chunk);
        }
    }

    /// Reads a whole object and answers its size and SHA-256 (hex), reading at most
    /// `bytes_per_sec` (0: as fast as the store answers), so a background check leaves the
    /// disk to the downloads. `None`: the object does not exist.
    pub async fn digest(&self, key: &str, bytes_per_sec: u64) -> Result<Option<(u64, String)>> {
        let Some(size) = self.size(key).await? else { return Ok(None) };
        let mut sha256 = Sha256::new();
        if size > 0 {
            let mut stream = match self.read(key, 0..size).await {
                Ok(stream) => stream,
                Err(Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let started = std::time::Instant::now();
            let mut read = 0u64;
            while let Some(chunk) = stream.next().await {
                let bytes = chunk.map_err(|e| Error::internal(format!("reading {key}: {e}")))?;
                sha256.update(&bytes);
                read += bytes.len() as u64;
                if bytes_per_sec > 0 {
                    let due = Duration::from_secs_f64(read as f64 / bytes_per_sec as f64);
                    if let Some(ahead) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(ahead).await;
                    }
                }
            }
        }
        Ok(Some((size, hex::encode(sha256.finalize()))))
    }

    /// Reads a whole object as a buffered stream (pipeline steps read their input so). The
    /// bytes are hashed as they pass: a stream that ends with other bytes than `expected`
    /// (an object changed since it was written) ends in an error instead, so a step never
    /// turns corrupted input into an output with digests of its own.
    pub async fn reader(
        &self,
        key: &str,
        expected: &Digests,
    ) -> Result<impl tokio::io::AsyncBufRead + Unpin + Send + use<>> {
        let stream = self.store.get(&ObjectPath::from(key)).await?.into_stream();
        let state = (stream, Sha256::new(), 0u64, expected.clone(), key.to_owned());
        let checked =
            futures_util::stream::try_unfold(state, |(mut stream, mut sha256, mut size, expected, key)| async move {
                match stream.next().await {
                    Some(chunk) => {
                        let bytes = chunk.map_err(std::io::Error::other)?;
                        sha256.update(&bytes);
                        size += bytes.len() as u64;
                        Ok(Some((bytes, (stream, sha256, size, expected, key))))
                    }
                    None => {
                        let found = hex::encode(sha256.finalize());
                        if size == expected.size && found == expected.sha256 {
                            return Ok(None);
                        }
                        Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "the stored bytes of {key} no longer match what was recorded ({} bytes, SHA-256 {}): \
                             found {size} bytes, SHA-256 {found}",
                                expected.size, expected.sha256
                            ),
                        ))
                    }
                }
            })
            .boxed();
        Ok(tokio_util::io::StreamReader::new(checked))
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store.put(&ObjectPath::from(key), bytes.into()).await.map_err(|e| self.failed(e))?;
        self.full.clear();
        Ok(())
    }

    /// A small object's bytes, or `None` when it does not exist.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        let result = match self.store.get(&ObjectPath::from(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(result.bytes().await?))
    }

    /// Writes `bytes` to `key` unless the key exists; `false`: it did, nothing was written.
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        match self.store.put_opts(&ObjectPath::from(key), bytes.into(), PutMode::Create.into()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Whether the store holds any object the database could refer to
    /// ([`keys::OBJECT_PREFIXES`]), as opposed to only its own markers.
    pub async fn holds_objects(&self) -> Result<bool> {
        for prefix in keys::OBJECT_PREFIXES {
            let prefix = ObjectPath::from(prefix);
            if let Some(first) = self.store.list(Some(&prefix)).next().await {
                first?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every object whose key starts with `prefix` (a folder, ending in `/`). Unfinished
    /// uploads are not objects and are not listed.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let prefix = ObjectPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|m| Listed { key: m.location.to_string(), size: m.size, modified: m.last_modified.naive_utc() })
            .collect())
    }

    /// Removes the staging files (`<key>#<n>`) of uploads that never finished, such as a
    /// killed process leaves, once they are older than `grace` (a file being written is
    /// touched by every part). On S3, aborts the multipart uploads that never finished, once
    /// started longer than `grace` ago (`s3.rs`). Returns the files (keys) removed, relative
    /// to the store.
    pub async fn sweep_staging(&self, grace: Duration) -> Result<Vec<String>> {
        if let Some(s3) = &self.s3 {
            return s3.sweep_uploads(grace).await;
        }
        let Some(root) = self.local_root.clone() else { return Ok(Vec::new()) };
        tokio::task::spawn_blocking(move || sweep_staging_files(&root, grace))
            .await
            .map_err(|e| Error::internal(format!("sweeping staging files: {e}")))?
    }

    /// `None` while the store takes writes. After a write found no space, says what that
    /// write answered until a small write (a probe) fits again.
    pub async fn out_of_space(&self) -> Option<String> {
        self.full.last()?;
        match self.put_bytes(keys::SPACE_PROBE, vec![0; SPACE_PROBE_LEN]).await {
            Ok(()) => None,
            Err(e) => Some(self.full.last().unwrap_or_else(|| e.to_string())),
        }
    }

    /// Whether the store answers at all: any answer, even "not found", counts.
    pub async fn ping(&self) -> Result<()> {
        self.size(keys::READY_MARKER).await.map(drop)
    }
}

/// A streaming write. Dropping it without [`ObjectWriter::finish`] leaves nothing visible;
/// [`ObjectWriter::abort`] also cleans up the parts already written.
pub struct ObjectWriter {
    upload: WriteMultipart,
    full: Arc<SpaceLatch>,
    key: String,
    limit: u64,
    size: u64,
    sha256: Sha256,
    sha1: Sha1,
    md5: Md5,
}

/// How many part uploads may be in flight before `write` waits (back-pressure).
const MAX_PARTS_IN_FLIGHT: usize = 4;

impl ObjectWriter {
    /// Appends bytes. Past the limit the write is aborted and nothing is kept.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(Error::PayloadTooLarge(format!("the object is larger than the limit of {} bytes", self.limit)));
        }
        self.sha256.update(chunk);
        self.sha1.update(chunk);
        self.md5.update(chunk);
        self.upload.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await.map_err(|e| self.full.note(e.into()))?;
        self.upload.write(chunk);
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// The SHA-256 so far (hex), without finishing; lets a caller check before committing.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256.clone().finalize())
    }

    pub async fn finish(self) -> Result<StoredObject> {
        self.upload.finish().await.map_err(|e| self.full.note(e.into()))?;
        self.full.clear();
        Ok(StoredObject {
            key: self.key,
            digests: Digests {
                size: self.size,
                sha256: hex::encode(self.sha256.finalize()),
                sha1: hex::encode(self.sha1.finalize()),
                md5: hex::encode(self.md5.finalize()),
            },
        })
    }

    pub async fn abort(self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(key = %self.key, error = %e, "aborting an object upload failed");
        }
    }
}

/// Only this module knows object_store's types: its errors become ours here.
impl From<object_store::Error> for Error {
    fn from(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { path, .. } => Error::NotFound(format!("object {path} not found")),
            other if crate::error::is_out_of_space(&other) || s3::is_out_of_space(&other) => {
                Error::StorageFull(format!("the object store has no space left: {other}"))
            }
            other => Error::Internal(anyhow::Error::new(other).context("object store operation failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn the_digest_reads_no_faster_than_asked() -> crate::error::Result<()> {
        let storage = super::Storage::from_url("memory://")?;
        storage.put_bytes("images/a/b", vec![7; 1024 * 1024]).await?;
        let started = Instant::now();
        let (size, sha256) = storage.digest("images/a/b", 4 * 1024 * 1024).await?.unwrap_or_default();
        assert!(started.elapsed() >= Duration::from_millis(240), "1 MiB at 4 MiB/s took {:?}", started.elapsed());
        assert_eq!(size, 1024 * 1024);
        assert_eq!(storage.digest("images/a/b", 0).await?, Some((size, sha256)));
        assert_eq!(storage.digest("images/a/missing", 0).await?, None);
        Ok(())
    }

    #[test]
    fn staging_names_are_a_key_a_hash_and_digits() {
        assert!(super::is_staging("0193a7c2#1"));
        assert!(super::is_staging("upload#12"));
        assert!(!super::is_staging("upload"));
        assert!(!super::is_staging("upload#"));
        assert!(!super::is_staging("upload#1a"));
    }
}
