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

pub mod steps;

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
    /// The firmware image the first step reads.
    pub image: Output,
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
}

/// The cache key of the output after `steps`: what it was made from, nothing else. (The
/// text hashed has not changed since the first release, so older outputs stay reusable.)
pub fn cache_key(image_sha256: &str, steps: &[StepConfig]) -> String {
    let fingerprints: Vec<String> = steps.iter().map(|s| steps::of(s).fingerprint()).collect();
    let steps = format!("[{}]", fingerprints.join(","));
    hex::encode(Sha256::digest(format!("devicehub-pipeline-v1\n{image_sha256}\n{steps}").as_bytes()))
}

/// Runs the steps (or reuses a previous run's output) and returns the deliverable.
pub async fn run(storage: &Storage, cache: &dyn Cache, work: &Work) -> Result<Output> {
    let key = cache_key(&work.image.digests.sha256, &work.steps);
    if let Some(done) = cache.lookup(&key).await? {
        tracing::info!(session = %work.session_id, cache_key = %key, "pipeline output reused from the cache");
        return Ok(done);
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut current = work.image.clone();
    let mut written = Vec::new();
    for (i, config) in work.steps.iter().enumerate() {
        let step = steps::of(config);
        // a name of this run's own: see the module comment
        let out_key = format!("artifacts/{}/{run_id}", cache_key(&work.image.digests.sha256, &work.steps[..=i]));
        let context = steps::Context { storage, work, out_key: &out_key };
        let next = step.run(&context, current).await?;
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
        // Another run recorded the same inputs first: serve theirs (the digests the
        // session keeps are the winner's), and delete only our own object.
        tracing::info!(cache_key = %key, kept = %kept.key, "an identical run finished first; its output is used");
        storage.delete(&ours).await?;
    }
    Ok(kept)
}
