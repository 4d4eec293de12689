//! Runs a synchronous encoder (zstd, age, a signature's hash) over a stored object on a
//! blocking thread, so the CPU work never stalls the async workers: the input is the object
//! read as it streams (checked against its recorded digests, like every step's input), the
//! output a new object written as the encoder produces it. Memory is the encoder's own plus
//! one 256 KiB write buffer; nothing is held whole unless the encoder needs it.

use std::io::{self, BufWriter, Read, Write};

use tokio::runtime::Handle;
use tokio_util::io::SyncIoBridge;

use super::Output;
use crate::error::{Error, Result};
use crate::storage::{ObjectWriter, Storage, StoredObject};

/// The write buffer in front of the object store.
const WRITE_BUFFER: usize = 256 * 1024;

/// A synchronous `Write` into an object being written: each buffered chunk goes to the
/// store from the blocking thread. A store error (e.g. a full disk) is kept as it is, so
/// the step fails with its real code rather than a generic I/O error.
struct BlockingSink {
    handle: Handle,
    writer: ObjectWriter,
    failed: Option<Error>,
}

impl Write for BlockingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.handle.block_on(self.writer.write(buf)) {
            let message = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `input`, lets `encode` turn it into bytes, and stores them at `out_key`. `step`
/// names the step in errors. On any failure nothing is kept.
pub async fn transform<F>(
    storage: &Storage,
    input: &Output,
    out_key: &str,
    step: &str,
    encode: F,
) -> Result<StoredObject>
where
    F: FnOnce(&mut dyn Read, &mut dyn Write) -> io::Result<()> + Send + 'static,
{
    let reader = storage.reader(&input.key, &input.digests).await?;
    let writer = storage.writer(out_key, u64::MAX).await?;
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let mut source = SyncIoBridge::new_with_handle(reader, handle.clone());
        let mut sink = BufWriter::with_capacity(WRITE_BUFFER, BlockingSink { handle, writer, failed: None });
        let result = encode(&mut source, &mut sink).and_then(|()| sink.flush());
        let sink = match sink.into_inner() {
            Ok(sink) => sink,
            Err(e) => e.into_inner().into_parts().0, // flushing failed above: `result` says why
        };
        (result, sink)
    })
    .await;
    let (result, sink) = joined.map_err(|e| Error::internal(format!("{step} step: the encoder stopped: {e}")))?;
    match result {
        Ok(()) => sink.writer.finish().await,
        Err(e) => {
            sink.writer.abort().await;
            Err(sink.failed.unwrap_or_else(|| Error::internal(format!("{step} step: {e}"))))
        }
    }
}

/// Reads a whole stored object into memory on a blocking thread and hands it to `work`
/// (a signature's hash, a delta's base): `work` reads it as a stream, so only what it keeps
/// stays in memory.
pub async fn consume<T, F>(storage: &Storage, input: &Output, step: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> io::Result<T> + Send + 'static,
{
    let reader = storage.reader(&input.key, &input.digests).await?;
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut source = SyncIoBridge::new_with_handle(reader, handle);
        work(&mut source)
    })
    .await
    .map_err(|e| Error::internal(format!("{step} step: stopped: {e}")))?
    .map_err(|e| Error::internal(format!("{step} step: {e}")))
}
