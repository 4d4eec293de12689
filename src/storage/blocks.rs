//! Downloads from a local store without per-request costs, and with bounded memory.
//!
//! A 1 MiB range used to cost a file open (inside object_store), a metadata call and a map
//! of its own, each behind a blocking-pool hop, and each connection held its own 1 MiB map.
//! Mapped file pages count as the process's (and a container's) memory once per mapping, so
//! a thousand connections meant a gigabyte of RSS. Here instead:
//!
//! - **Open files are reused.** An object's file stays open for [`FILE_TTL`] (objects are
//!   written once under a fresh key and renamed into place, never rewritten), so most
//!   requests open nothing.
//! - **Blocks are shared.** A 1 MiB block of an object is mapped once, whoever reads it: every
//!   connection gets a reference-counted slice of the same map, so the page is counted once.
//!   Recently used blocks stay mapped (a clock over the hot set), so a range request on a hot
//!   image costs no system call before the copy into the socket.
//! - **Mapped bytes are capped.** All maps together stay within a budget
//!   ([`Blocks::new`]); when the budget is taken by blocks readers still hold (many slow
//!   readers spread over large images), a block is read into a small buffer instead of being
//!   mapped, so memory stays bounded whatever the number of connections or the image size.
//! - **The response gets chunks sized to the number of downloads.** actix-web copies every
//!   chunk into the connection's write buffer before writing it to the socket, and keeps
//!   that buffer's size, so the chunk bounds each connection's memory; but each chunk is
//!   one write, so few large chunks are faster. All downloads in flight share
//!   [`WRITE_BUDGET`]: a few get whole blocks (at most `chunk`, [`Blocks::set_chunk`]),
//!   a thousand get about [`MIN_CHUNK`] each.
//!
//! The scrub never reads through here: it must see the file as it is on disk now.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};

/// The unit of mapping: a block starts at a multiple of this offset (page-aligned).
pub const BLOCK: u64 = 1024 * 1024;

/// The most bytes handed to the response at once by default (a whole block).
pub const DEFAULT_CHUNK: usize = BLOCK as usize;

/// What all downloads in flight hand to the HTTP layer at once, together (about what
/// their write buffers hold).
pub const WRITE_BUDGET: usize = 32 * 1024 * 1024;

/// The smallest chunk, however many downloads there are.
pub const MIN_CHUNK: usize = 32 * 1024;

/// What a buffered read (past the budget) reads at most at once.
const BUFFERED_READ: usize = 256 * 1024;

/// How long an open file is reused before it is opened again (a file restored under the
/// same key by an operator is seen after this long).
pub const FILE_TTL: Duration = Duration::from_secs(10);

/// How many objects are kept open at most.
const MAX_OPEN: usize = 256;

/// The default cap on mapped bytes, all downloads together.
pub const DEFAULT_BUDGET: usize = 64 * 1024 * 1024;

/// Shared, capped maps of local objects' blocks (see the module comment).
pub struct Blocks {
    root: PathBuf,
    budget: AtomicUsize,
    chunk: AtomicUsize,
    /// Bytes mapped right now, by every block alive (hot or held by a reader).
    mapped: Arc<AtomicUsize>,
    /// Downloads reading now.
    reading: Arc<AtomicUsize>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Arc<OpenObject>>,
    /// Blocks kept mapped while nobody reads them, oldest first (a clock: a block used since
    /// its last turn gets another).
    hot: VecDeque<Arc<Block>>,
}

struct OpenObject {
    file: Arc<std::fs::File>,
    len: u64,
    /// Which file it is (device, inode, size, modification time): when it is checked again
    /// after [`FILE_TTL`] and is still the same file, its open handle and mapped blocks are
    /// kept (mapping them anew while readers hold the old maps would fill the budget).
    identity: (u64, u64, u64, Option<std::time::SystemTime>),
    opened: Instant,
    /// Blocks of this object that are mapped, hot or held by a reader.
    blocks: Arc<Mutex<HashMap<u64, Weak<Block>>>>,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64, u64, Option<std::time::SystemTime>) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.len(), meta.modified().ok())
}

struct Block {
    map: memmap2::Mmap,
    used: AtomicBool,
    mapped: Arc<AtomicUsize>,
}

impl Drop for Block {
    fn drop(&mut self) {
        self.mapped.fetch_sub(self.map.len(), Ordering::Relaxed);
    }
}

/// A block as the owner of the `Bytes` a response sends.
struct Shared(Arc<Block>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `key` is a plain relative path (what this store's keys are); anything else is
/// left to object_store, which knows how it encodes unusual names.
fn plain(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

impl Blocks {
    /// Blocks of the objects under `root`, at most `budget` bytes mapped at once.
    pub fn new(root: PathBuf, budget: usize) -> Blocks {
        Blocks {
            root,
            budget: AtomicUsize::new(budget),
            chunk: AtomicUsize::new(DEFAULT_CHUNK),
            mapped: Arc::default(),
            reading: Arc::default(),
            state: Mutex::default(),
        }
    }

    pub fn set_budget(&self, budget: usize) {
        self.budget.store(budget, Ordering::Relaxed);
        lock(&self.state).hot.clear();
    }

    /// Whether downloads go through here (a budget is set); `false`: each download maps its
    /// own blocks (`storage::read_file_blocks`).
    pub fn enabled(&self) -> bool {
        self.budget.load(Ordering::Relaxed) > 0
    }

    /// Hands the response at most `bytes` at once (at least 4 KiB).
    pub fn set_chunk(&self, bytes: usize) {
        self.chunk.store(bytes.max(4096), Ordering::Relaxed);
    }

    /// Bytes mapped right now.
    #[cfg(test)]
    pub fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Whether this reads `key` (a plain path); `false`: ask object_store.
    pub fn serves(key: &str) -> bool {
        plain(key)
    }

    /// Forgets an object (it was deleted).
    pub fn forget(&self, key: &str) {
        let gone = lock(&self.state).files.remove(key);
        drop(gone);
    }

    /// Streams bytes `range` of `key`. `NotFound` when there is no such object, and an
    /// `UnexpectedEof` error when it is shorter than the range.
    pub async fn read(
        self: &Arc<Self>,
        key: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let object = self.open(key).await?;
        if object.len < range.end {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the object is shorter than its size"));
        }
        let this = self.clone();
        let reading = Reading::start(&self.reading);
        let state = (range.start, range.end, Bytes::new());
        Ok(futures_util::stream::try_unfold(state, move |(pos, end, mut rest)| {
            let (this, object) = (this.clone(), object.clone());
            let chunk = this.chunk_now(&reading);
            async move {
                if rest.is_empty() {
                    if pos >= end {
                        return Ok(None);
                    }
                    let index = pos / BLOCK;
                    let within = pos - index * BLOCK;
                    let upto = end.min((index + 1) * BLOCK) - index * BLOCK;
                    match this.block(&object, index).await? {
                        Some(block) => rest = block.slice(to_usize(within)?..to_usize(upto)?),
                        None => {
                            // the budget is taken: one buffered read
                            let len = to_usize(upto - within)?.min(chunk.min(BUFFERED_READ));
                            let file = object.file.clone();
                            let chunk = blocking(move || {
                                let mut buf = vec![0; len];
                                file.read_exact_at(&mut buf, pos)?;
                                Ok(Bytes::from(buf))
                            })
                            .await?;
                            let next = pos + chunk.len() as u64;
                            return Ok(Some((chunk, (next, end, Bytes::new()))));
                        }
                    }
                }
                let part = rest.split_to(rest.len().min(chunk));
                let next = pos + part.len() as u64;
                Ok(Some((part, (next, end, rest))))
            }
        })
        .boxed())
    }

    /// The chunk for one download now: its share of [`WRITE_BUDGET`], within
    /// [`MIN_CHUNK`]..=`chunk`.
    fn chunk_now(&self, _reading: &Reading) -> usize {
        let most = self.chunk.load(Ordering::Relaxed);
        let share = WRITE_BUDGET / self.reading.load(Ordering::Relaxed).max(1);
        share.clamp(MIN_CHUNK.min(most), most)
    }

    async fn open(&self, key: &str) -> io::Result<Arc<OpenObject>> {
        let known = lock(&self.state).files.get(key).cloned();
        if let Some(found) = &known
            && found.opened.elapsed() < FILE_TTL
        {
            return Ok(found.clone());
        }
        let path = self.root.join(key);
        let (file, meta) = blocking(move || {
            let file = std::fs::File::open(path)?;
            let meta = file.metadata()?;
            Ok((file, meta))
        })
        .await?;
        let object = match known {
            Some(old) if old.identity == identity(&meta) => Arc::new(OpenObject {
                opened: Instant::now(),
                blocks: old.blocks.clone(),
                file: old.file.clone(),
                ..*old
            }),
            _ => Arc::new(OpenObject {
                file: Arc::new(file),
                len: meta.len(),
                identity: identity(&meta),
                opened: Instant::now(),
                blocks: Arc::default(),
            }),
        };
        let mut state = lock(&self.state);
        if state.files.len() >= MAX_OPEN && !state.files.contains_key(key) {
            let oldest = state.files.iter().min_by_key(|(_, o)| o.opened).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                state.files.remove(&oldest);
            }
        }
        state.files.insert(key.to_owned(), object.clone());
        Ok(object)
    }

    /// Block `index` of `object`: the one already mapped, a new map if the budget allows,
    /// or `None` (read it buffered).
    async fn block(&self, object: &Arc<OpenObject>, index: u64) -> io::Result<Option<Bytes>> {
        if let Some(block) = lock(&object.blocks).get(&index).and_then(Weak::upgrade) {
            block.used.store(true, Ordering::Relaxed);
            return Ok(Some(Bytes::from_owner(Shared(block))));
        }
        let start = index * BLOCK;
        let len = to_usize((object.len - start).min(BLOCK))?;
        if !self.reserve(len) {
            return Ok(None);
        }
        let file = object.file.clone();
        let map = blocking(move || map(&file, start, len)).await;
        let map = match map {
            Ok(map) => map,
            Err(e) => {
                self.mapped.fetch_sub(len, Ordering::Relaxed);
                return Err(e);
            }
        };
        let block = Arc::new(Block { map, used: AtomicBool::new(false), mapped: self.mapped.clone() });
        {
            let mut blocks = lock(&object.blocks);
            if blocks.len() >= 64 {
                blocks.retain(|_, b| b.strong_count() > 0);
            }
            blocks.insert(index, Arc::downgrade(&block));
        }
        lock(&self.state).hot.push_back(block.clone());
        Ok(Some(Bytes::from_owner(Shared(block))))
    }

    /// Counts `len` more mapped bytes if they fit the budget, letting hot blocks nobody
    /// used since their last turn go to make room (one still read elsewhere stays mapped
    /// until its last reader is done, and counts until then).
    fn reserve(&self, len: usize) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        let mut state = lock(&self.state);
        let mut turns = state.hot.len();
        loop {
            if self.mapped.load(Ordering::Relaxed) + len <= budget {
                self.mapped.fetch_add(len, Ordering::Relaxed);
                return true;
            }
            let Some(oldest) = state.hot.pop_front() else { return false };
            if turns > 0 && oldest.used.swap(false, Ordering::Relaxed) {
                turns -= 1;
                state.hot.push_back(oldest);
            }
        }
    }
}

/// Counts a download as reading while it lives (its stream holds it).
struct Reading(Arc<AtomicUsize>);

impl Reading {
    fn start(count: &Arc<AtomicUsize>) -> Reading {
        count.fetch_add(1, Ordering::Relaxed);
        Reading(count.clone())
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(io::Error::other)
}

/// Maps `len` bytes at `offset` (a multiple of [`BLOCK`], so page-aligned), read-only.
#[allow(unsafe_code)] // the one exception in the crate besides `storage::map_block`: see the SAFETY note
fn map(file: &std::fs::File, offset: u64, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and objects are written to a temporary file and renamed
    // into place, never truncated or rewritten in place, so the mapped file cannot shrink.
    unsafe { memmap2::MmapOptions::new().offset(offset).len(len).populate().map(file) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;

    fn object(dir: &std::path::Path, key: &str, len: usize) -> Vec<u8> {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
        std::fs::write(path, &bytes).expect("write");
        bytes
    }

    /// Reads `range` slowly (a pause after every chunk), as a device on a poor link does.
    async fn slow_read(blocks: Arc<Blocks>, key: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        let mut stream = blocks.read(key, range).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(out)
    }

    #[tokio::test]
    async fn many_slow_readers_get_exact_bytes_and_the_maps_stay_within_the_budget() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let image = object(dir.path(), "images/a/b", 5 * BLOCK as usize + 12345);
        // room for two blocks: most readers must fall back to buffered reads
        let blocks = Arc::new(Blocks::new(dir.path().to_path_buf(), 2 * BLOCK as usize));
        let peak = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (blocks, peak) = (blocks.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(blocks.mapped(), Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let len = image.len() as u64;
        let mut readers = Vec::new();
        for i in 0..40u64 {
            // whole downloads, aligned and unaligned ranges, the tail
            let range = match i % 4 {
                0 => 0..len,
                1 => (i * BLOCK / 3 % len)..(i * BLOCK / 3 % len + BLOCK).min(len),
                2 => (len - 777)..len,
                _ => (i * 4099 % len)..len,
            };
            let blocks = blocks.clone();
            readers.push(tokio::spawn(async move { (range.clone(), slow_read(blocks, "images/a/b", range).await) }));
        }
        for reader in readers {
            let (range, got) = reader.await.map_err(io::Error::other)?;
            let want = &image[range.start as usize..range.end as usize];
            assert!(got? == want, "range {range:?} came back with other bytes");
        }
        watcher.abort();
        assert!(peak.load(Ordering::Relaxed) <= 2 * BLOCK as usize, "mapped {} bytes", peak.load(Ordering::Relaxed));
        Ok(())
    }

    #[tokio::test]
    async fn chunks_shrink_as_downloads_grow_and_grow_back() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let image = object(dir.path(), "images/c/d", 4 * BLOCK as usize);
        let blocks = Arc::new(Blocks::new(dir.path().to_path_buf(), DEFAULT_BUDGET));
        let mut one = blocks.read("images/c/d", 0..4 * BLOCK).await?;
        let first = one.next().await.expect("a chunk")?;
        assert_eq!(first.len(), BLOCK as usize, "alone, a download gets whole blocks");
        let mut others = Vec::new();
        for _ in 0..2000 {
            others.push(blocks.read("images/c/d", 0..4 * BLOCK).await?);
        }
        let second = one.next().await.expect("a chunk")?;
        assert_eq!(second.len(), MIN_CHUNK, "among 2 001, the smallest chunk");
        drop(others);
        let mut got = [first, second].concat();
        while let Some(chunk) = one.next().await {
            let chunk = chunk?;
            assert!(
                chunk.len() > MIN_CHUNK
                    || got.len() + chunk.len() == image.len()
                    || chunk.len() == BLOCK as usize - MIN_CHUNK
            );
            got.extend_from_slice(&chunk);
        }
        assert!(got == image);
        Ok(())
    }

    #[tokio::test]
    async fn hot_blocks_are_shared_and_a_missing_or_short_object_is_an_error() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let image = object(dir.path(), "images/x/y", 3 * BLOCK as usize);
        let blocks = Arc::new(Blocks::new(dir.path().to_path_buf(), DEFAULT_BUDGET));
        for _ in 0..3 {
            let got = slow_read(blocks.clone(), "images/x/y", BLOCK..2 * BLOCK).await?;
            assert!(got == image[BLOCK as usize..2 * BLOCK as usize]);
        }
        assert_eq!(blocks.mapped(), BLOCK as usize, "one block, mapped once for three readers");
        let missing = blocks.read("images/x/none", 0..1).await.err().map(|e| e.kind());
        assert_eq!(missing, Some(io::ErrorKind::NotFound));
        let short = blocks.read("images/x/y", 0..3 * BLOCK + 1).await.err().map(|e| e.kind());
        assert_eq!(short, Some(io::ErrorKind::UnexpectedEof));
        assert!(!Blocks::serves("images/../etc"));
        assert!(!Blocks::serves("/etc/passwd"));
        assert!(Blocks::serves("images/0193a7c2-aa/0193a7c2-bb"));
        Ok(())
    }
}
