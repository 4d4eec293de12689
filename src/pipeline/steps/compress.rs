//! `compress`: compresses the previous output with zstd (the default) or gzip.
//!
//! `{"type": "compress", "algorithm": "zstd", "level": 3, "long": false, "window_log": null}`:
//! zstd `level` 1–19 (default 3); `long` turns on long-distance matching (zstd `--long`),
//! which finds repeats far apart in large images; `window_log` (10–30) sets the match window
//! to 2^window_log bytes (default: zstd's for the level, 2^27 with `long`). A device
//! decompresses with `zstd -d` (add `--long=<window_log>` past 2^27, as the payload says).
//! `"algorithm": "gzip"` takes `level` 0–9 (default 6) and is what `{"type": "gzip"}` does.
//!
//! Streams. Memory bound: gzip, its 32 KiB window plus one 256 KiB buffer; zstd, the
//! window (2^window_log; 8 MiB at level 3, 128 MiB with `long`) plus the match tables of the
//! level (a few MiB at level 3; at level 19 about 3× the window), whatever the image size.

use std::io;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Context, Step, StepConfig, gzip::Gzip};
use crate::error::Result;
use crate::pipeline::{Output, stream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    Zstd,
    Gzip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compress {
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Default: 3 for zstd, 6 for gzip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub long: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_log: Option<u32>,
}

/// The largest match window a step may ask for (1 GiB: the compressor's memory grows with it).
pub const MAX_WINDOW_LOG: u32 = 30;

impl Compress {
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.algorithm {
            Algorithm::Gzip => {
                if self.long || self.window_log.is_some() {
                    return Err("long and window_log apply to zstd only".into());
                }
                self.gzip().validate()
            }
            Algorithm::Zstd => {
                if let Some(level) = self.level
                    && !(1..=19).contains(&level)
                {
                    return Err("level must be 1 to 19 for zstd".into());
                }
                if let Some(w) = self.window_log
                    && !(10..=MAX_WINDOW_LOG).contains(&w)
                {
                    return Err(format!("window_log must be 10 to {MAX_WINDOW_LOG}"));
                }
                Ok(())
            }
        }
    }

    fn gzip(&self) -> Gzip {
        Gzip { level: self.level.and_then(|l| u32::try_from(l).ok()).unwrap_or(6) }
    }

    /// The window a device must allow when decompressing (`zstd -d --long=<this>`).
    fn window_log(&self) -> Option<u32> {
        self.window_log.or(if self.long { Some(27) } else { None })
    }
}

/// A zstd encoder with `level`, long-distance matching and window as asked.
pub fn zstd_encoder<'a, W: io::Write>(
    out: W,
    level: i32,
    long: bool,
    window_log: Option<u32>,
    prefix: Option<&'a [u8]>,
) -> io::Result<zstd::stream::write::Encoder<'a, W>> {
    let mut encoder = match prefix {
        Some(prefix) => zstd::stream::write::Encoder::with_ref_prefix(out, level, prefix)?,
        None => zstd::stream::write::Encoder::new(out, level)?,
    };
    encoder.include_checksum(true)?;
    if long {
        encoder.long_distance_matching(true)?;
    }
    if let Some(w) = window_log {
        encoder.window_log(w)?;
    }
    Ok(encoder)
}

impl Step for Compress {
    fn name(&self) -> &'static str {
        "compress"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Compress(self.clone()))
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            if self.algorithm == Algorithm::Gzip {
                return self.gzip().run(ctx, input).await;
            }
            let (level, long, window_log) = (self.level.unwrap_or(3), self.long, self.window_log);
            let stored = stream::transform(ctx.storage, &input, ctx.out_key, "compress", move |source, sink| {
                let mut encoder = zstd_encoder(sink, level, long, window_log, None)?;
                io::copy(source, &mut encoder)?;
                encoder.finish()?;
                Ok(())
            })
            .await?;
            let mut extras = input.extras;
            extras.insert(
                "compression".into(),
                json!({"algorithm": "zstd", "level": level, "window_log": self.window_log()}),
            );
            Ok(Output { key: stored.key, filename: format!("{}.zst", input.filename), digests: stored.digests, extras })
        })
    }
}
