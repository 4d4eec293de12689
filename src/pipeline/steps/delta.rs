//! `delta`: a binary patch from the image the device runs now (the *base*) to the target,
//! in zstd's `--patch-from` format: the base is the compressor's referenced prefix, and the
//! device rebuilds the target with the stock tool,
//! `zstd -d --long=<window_log> --patch-from=<base image> <patch> -o <target>`.
//!
//! Why zstd rather than bsdiff 4: a device already needs zstd for `compress`, patching runs
//! at decompression speed (bspatch is slower and holds the whole target and base), creating
//! one is one streaming compression pass (bsdiff builds a suffix array of the base: ~8× the
//! base in memory and minutes on large images), and on executables the patches are within a
//! few percent of bsdiff's (see docs/benchmarks.md, "Procedures").
//!
//! `{"type": "delta", "level": 19, "max_ratio": 0.9}`: `level` 1–19; the patch is served only
//! if it is smaller than `max_ratio` (0.05–1.0) × the target's size. Otherwise — and when
//! the base is unknown or has no stored image — the step passes the full image on, and
//! `payload.delta` says which (`applied`), from which version, and why. It must be the first
//! step: it reads the image itself.
//!
//! Memory bound: the base is held whole (its size), plus the compressor's window over base
//! and target (2^window_log, the next power of two above both) and the match tables of the
//! level (about 3× the window at level 19, less at lower levels).

use std::io;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Context, Step, StepConfig, compress::zstd_encoder};
use crate::error::Result;
use crate::pipeline::{Base, Output, Work, stream};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    #[serde(default = "default_level")]
    pub level: i32,
    #[serde(default = "default_max_ratio")]
    pub max_ratio: f64,
}

impl Eq for Delta {}

fn default_level() -> i32 {
    19
}

fn default_max_ratio() -> f64 {
    0.9
}

/// The patch format, as the payload and the manifest name it.
pub const FORMAT: &str = "zstd-patch-from";

/// zstd's largest window on 64-bit machines: base and target must fit in it.
const MAX_WINDOW_LOG: u32 = 31;

impl Delta {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=19).contains(&self.level) {
            return Err("level must be 1 to 19".into());
        }
        if !(0.05..=1.0).contains(&self.max_ratio) {
            return Err("max_ratio must be 0.05 to 1.0".into());
        }
        Ok(())
    }
}

/// The window a patch between `base` and `target` bytes needs: the power of two above the
/// larger (as `zstd --patch-from` chooses it), at least 2^10.
pub fn window_log_for(base: u64, target: u64) -> u32 {
    let larger = base.max(target).max(1);
    (u64::BITS - larger.leading_zeros()).max(10)
}

/// What `payload.delta` says when the full image is delivered.
fn full_image(work: &Work, reason: String) -> Value {
    let base_version = match &work.base {
        Base::Unknown => None,
        Base::NotStored { version } => Some(version.clone()),
        Base::Stored { version, .. } => Some(version.clone()),
    };
    json!({"applied": false, "format": FORMAT, "base_version": base_version, "reason": reason})
}

impl Step for Delta {
    fn name(&self) -> &'static str {
        "delta"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Delta(self.clone()))
    }

    fn inputs(&self, work: &Work) -> Option<String> {
        Some(match &work.base {
            Base::Unknown => "base:unknown".to_owned(),
            Base::NotStored { version } => format!("base:not-stored:{version}"),
            Base::Stored { image, .. } => format!("base:{}", image.digests.sha256),
        })
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let work = ctx.work;
            let mut passed = input.clone();
            let (version, image) = match &work.base {
                Base::Unknown => {
                    let why = "the device's current firmware version is unknown".to_owned();
                    passed.extras.insert("delta".into(), full_image(work, why));
                    return Ok(passed);
                }
                Base::NotStored { version } => {
                    let why = format!("no stored image for the current version {version}");
                    passed.extras.insert("delta".into(), full_image(work, why));
                    return Ok(passed);
                }
                Base::Stored { version, image } => (version.clone(), image.clone()),
            };
            let window_log = window_log_for(image.digests.size, input.digests.size);
            if window_log > MAX_WINDOW_LOG {
                let why = format!("base and target exceed zstd's largest window (2^{MAX_WINDOW_LOG} bytes)");
                passed.extras.insert("delta".into(), full_image(work, why));
                return Ok(passed);
            }
            let base = stream::consume(ctx.storage, &image, "delta", |source| {
                let mut bytes = Vec::new();
                source.read_to_end(&mut bytes)?;
                Ok(bytes)
            })
            .await?;
            let level = self.level;
            let stored = stream::transform(ctx.storage, &input, ctx.out_key, "delta", move |source, sink| {
                let mut encoder = zstd_encoder(sink, level, true, Some(window_log), Some(&base))?;
                io::copy(source, &mut encoder)?;
                encoder.finish()?;
                Ok(())
            })
            .await?;
            let limit = self.max_ratio * input.digests.size as f64;
            if stored.digests.size as f64 >= limit {
                ctx.storage.delete(&stored.key).await?;
                let why = format!(
                    "the patch ({} bytes) is not smaller than {} × the image ({} bytes)",
                    stored.digests.size, self.max_ratio, input.digests.size
                );
                passed.extras.insert("delta".into(), full_image(work, why));
                return Ok(passed);
            }
            let mut extras = input.extras;
            extras.insert(
                "delta".into(),
                json!({
                    "applied": true,
                    "format": FORMAT,
                    "base_version": version,
                    "base_sha256": image.digests.sha256,
                    "window_log": window_log,
                    "target_size": input.digests.size,
                }),
            );
            Ok(Output {
                key: stored.key,
                filename: format!("{}.zstpatch", input.filename),
                digests: stored.digests,
                extras,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_base_and_target() {
        assert_eq!(window_log_for(0, 0), 10);
        assert_eq!(window_log_for(1000, 10), 10);
        assert_eq!(window_log_for(256 << 20, 255 << 20), 29);
        assert!(1u64 << window_log_for(3_000_000, 2_999_999) > 3_000_000);
    }
}
