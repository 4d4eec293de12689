//! The delivery pipeline, as its own wing: a procedure's steps, in order, each reading the
//! previous output (the first reads the firmware image) and writing the next; the last
//! output is the deliverable. It knows the object store and nothing of the database: the
//! session side (claiming work, the output cache's rows, recording the outcome) lives in
//! `service::pipeline`, and reaches the pipeline through [`Work`] and the [`Cache`] trait.
//!
//! Outputs are content-addressed by [`cache_key`] (what they were made from), so many
//! identical requests cost one run. Every run writes under object names of its own, so two
//! identical runs racing each other never write the same object; the cache decides which
//! run's object a key means, and the loser deletes only its own.

pub mod deliverable;
pub mod steps;
pub mod stream;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::digests::Digests;
use crate::error::Result;
use crate::storage::Storage;
use steps::StepConfig;

/// What one run prepares.
#[derive(Debug, Clone)]
pub struct Work {
    /// For logs and per-session output.
    pub session_id: String,
    pub steps: Vec<StepConfig>,
    /// The model handle and version of the target firmware (manifests name them).
    pub model: String,
    pub version: String,
    pub firmware_id: String,
    /// The firmware image the first step reads.
    pub image: Output,
    /// The image the device runs now, which a `delta` starts from.
    pub base: Base,
    /// The device the session is for, if it names one.
    pub device: Option<DeviceKeys>,
    /// The signing key a `sign` step names, opened for this run.
    pub sign_key: Option<SignKey>,
}

impl Work {
    /// The device's id when some step makes per-device output.
    pub fn per_device_device(&self) -> Option<String> {
        if self.steps.iter().any(|s| steps::of(s).per_device()) {
            self.device.as_ref().map(|d| d.device_id.clone())
        } else {
            None
        }
    }
}

/// The base of a delta.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// The request named no current version and the device has none recorded.
    Unknown,
    /// A version without a stored image (e.g. one from before the hub).
    NotStored {
        version: String,
    },
    Stored {
        version: String,
        image: Output,
    },
}

/// What per-device steps need of the device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceKeys {
    pub device_id: String,
    /// Its age X25519 recipient (`age1…`), if set.
    pub age_recipient: Option<String>,
}

/// A signing key, its secret opened for one run (never logged).
#[derive(Clone)]
pub struct SignKey {
    pub id: String,
    /// The minisign secret key, as `minisign::SecretKey::to_bytes` wrote it.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A stored object a step reads or wrote, and at the end the deliverable.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: String,
    pub filename: String,
    pub digests: Digests,
    /// What the steps add to the session payload (e.g. `manifest`).
    pub extras: Map<String, Value>,
}

/// The output cache, as the pipeline sees it.
pub trait Cache: Send + Sync {
    /// A previous run's output for `key`, if it is still whole.
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Output>>>;
    /// Records `output` for `key` unless another run did first; answers the winner.
    fn record<'a>(&'a self, key: &'a str, output: Output) -> BoxFuture<'a, Result<Output>>;
    /// Claims the making of `key` for `holder` (single flight), for [`Cache::claim_lease`];
    /// `false`: another live run holds it.
    fn claim<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Extends `holder`'s claim by another lease.
    fn renew<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Gives the claim up (the output is recorded, or the run failed).
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>>;
    /// How long a claim lasts unless renewed (a dead holder's claim expires after it).
    fn claim_lease(&self) -> Duration;
}

/// The cache key of the output after `steps`: what it was made from, nothing else (the
/// image, each step's configuration, and what a step depends on besides: a delta's base, a
/// device's key, the firmware a manifest names). The text hashed for the first steps
/// (`image`, `gzip`, `manifest`) has not changed since the first release, so older outputs
/// stay reusable.
pub fn cache_key(work: &Work, steps: &[StepConfig]) -> String {
    let fingerprints: Vec<String> = steps
        .iter()
        .map(|s| {
            let step = steps::of(s);
            match step.inputs(work) {
                Some(inputs) => format!("{}+{inputs}", step.fingerprint()),
                None => step.fingerprint(),
            }
        })
        .collect();
    let steps = format!("[{}]", fingerprints.join(","));
    let image_sha256 = &work.image.digests.sha256;
    hex::encode(Sha256::digest(format!("devicehub-pipeline-v1\n{image_sha256}\n{steps}").as_bytes()))
}

/// Where outputs stop being shared: the number of steps before the first per-device one,
/// when there is one and something before it worth keeping (made once, reused by every
/// device's run).
fn shared_prefix(steps: &[StepConfig]) -> Option<usize> {
    let first = steps.iter().position(|s| steps::of(s).per_device())?;
    (first > 0).then_some(first)
}

/// How often a run waiting for an identical run's output looks for it.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// Runs the steps (or reuses a previous run's output) and returns the deliverable.
///
/// Single flight: identical runs (same cache key) — on other workers, other instances —
/// make the output once. The first claims the key (a row with a lease, renewed while it
/// works); the others wait for its recorded output and reuse it, and take the work over
/// only if the claim expires (its holder died). The steps shared by many devices (those
/// before a per-device step) are made once the same way, under their own key.
pub async fn run(storage: &Storage, cache: &dyn Cache, work: &Work) -> Result<Output> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let key = cache_key(work, &work.steps);
    once(cache, &key, &run_id, work, async {
        let (start, input) = match shared_prefix(&work.steps) {
            Some(n) => {
                let prefix_key = cache_key(work, &work.steps[..n]);
                let made = make(storage, cache, work, &run_id, 0, n, work.image.clone());
                (n, once(cache, &prefix_key, &run_id, work, made).await?)
            }
            None => (0, work.image.clone()),
        };
        make(storage, cache, work, &run_id, start, work.steps.len(), input).await
    })
    .await
}

/// The output recorded for `key`, made by `making` unless an identical run makes it (see
/// [`run`]).
async fn once(
    cache: &dyn Cache,
    key: &str,
    holder: &str,
    work: &Work,
    making: impl Future<Output = Result<Output>>,
) -> Result<Output> {
    let mut waited = false;
    loop {
        if let Some(done) = cache.lookup(key).await? {
            let how = if waited { "made by an identical run meanwhile" } else { "from the cache" };
            tracing::info!(session = %work.session_id, cache_key = %key, "pipeline output reused ({how})");
            return Ok(done);
        }
        if cache.claim(key, holder).await? {
            // the holder before us may have recorded it and let go since we looked
            if let Some(done) = cache.lookup(key).await? {
                cache.release(key, holder).await?;
                tracing::info!(session = %work.session_id, cache_key = %key, "pipeline output reused (made just before)");
                return Ok(done);
            }
            break;
        }
        waited = true;
        tokio::time::sleep(WAIT_STEP).await;
    }
    let renewing = async {
        loop {
            tokio::time::sleep(cache.claim_lease() / 3).await;
            if let Err(e) = cache.renew(key, holder).await {
                tracing::warn!(cache_key = %key, error = %e, "renewing an output claim failed");
            }
        }
    };
    let made = tokio::select! {
        made = making => made,
        () = renewing => unreachable!("renewing never ends"),
    };
    if let Err(e) = cache.release(key, holder).await {
        // it expires on its own; waiters take over then
        tracing::warn!(cache_key = %key, error = %e, "releasing an output claim failed");
    }
    made
}

/// Runs `steps[from..upto]` on `input` and records the result under the key of
/// `steps[..upto]`; answers the recorded output.
async fn make(
    storage: &Storage,
    cache: &dyn Cache,
    work: &Work,
    run_id: &str,
    from: usize,
    upto: usize,
    input: Output,
) -> Result<Output> {
    let key = cache_key(work, &work.steps[..upto]);
    let mut current = input;
    let mut written: Vec<String> = Vec::new();
    for (i, config) in work.steps.iter().enumerate().take(upto).skip(from) {
        let step = steps::of(config);
        // a name of this run's own: see the module comment
        let out_key = format!("artifacts/{}/{run_id}", cache_key(work, &work.steps[..=i]));
        let context = steps::Context { storage, work, out_key: &out_key, index: i };
        count_run(&work.image.digests.sha256, step.name());
        let next = match step.run(&context, current).await {
            Ok(next) => next,
            Err(e) => {
                for k in &written {
                    storage.delete(k).await?;
                }
                return Err(named(e, i, step.name()));
            }
        };
        if next.key == out_key {
            written.push(out_key);
        }
        current = next;
    }
    // Intermediate outputs are not needed once the last step has read them.
    for k in written.iter().filter(|k| **k != current.key) {
        storage.delete(k).await?;
    }
    let ours = current.key.clone();
    let kept = cache.record(&key, current).await?;
    if kept.key != ours && written.contains(&ours) {
        // Another run recorded the same inputs first (its claim had expired): serve theirs
        // (the digests the session keeps are the winner's), and delete only our own object.
        tracing::info!(cache_key = %key, kept = %kept.key, "an identical run finished first; its output is used");
        storage.delete(&ours).await?;
    }
    Ok(kept)
}

/// How many times each step ran, per target image: what single flight saves, observable.
static RUNS: LazyLock<Mutex<BTreeMap<(String, &'static str), u64>>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn count_run(image_sha256: &str, step: &'static str) {
    if let Ok(mut runs) = RUNS.lock() {
        *runs.entry((image_sha256.to_owned(), step)).or_default() += 1;
    }
}

/// How many times `step` ran in this process on the image with this SHA-256.
pub fn step_runs(image_sha256: &str, step: &str) -> u64 {
    let runs =
        RUNS.lock().map(|r| r.iter().filter(|((i, s), _)| i == image_sha256 && *s == step).map(|(_, n)| *n).sum());
    runs.unwrap_or_default()
}

/// A step's failure, named: the session's fail reason says which step failed.
fn named(e: crate::error::Error, index: usize, name: &str) -> crate::error::Error {
    match e {
        crate::error::Error::Internal(inner) => {
            crate::error::Error::internal(format!("step {index} ({name}) failed: {inner:#}"))
        }
        other => other,
    }
}
