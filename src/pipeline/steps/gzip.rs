//! `gzip`: compresses the previous output (`level` 0–9, default 6). Streams: memory is
//! the encoder's window plus one 256 KiB buffer, whatever the image size.

use async_compression::Level;
use async_compression::tokio::bufread::GzipEncoder;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{Context, Step, StepConfig};
use crate::error::{Error, Result};
use crate::pipeline::Output;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gzip {
    #[serde(default = "default_level")]
    pub level: u32,
}

fn default_level() -> u32 {
    6
}

impl Gzip {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.level > 9 {
            return Err("level must be 0 to 9".into());
        }
        Ok(())
    }
}

impl Step for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Gzip(self.clone()))
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let source = ctx.storage.reader(&input.key, &input.digests).await?;
            let level = Level::Precise(i32::try_from(self.level).unwrap_or(6));
            let mut encoder = GzipEncoder::with_quality(source, level);
            let mut writer = ctx.storage.writer(ctx.out_key, u64::MAX).await?;
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
            Ok(Output {
                key: stored.key,
                filename: format!("{}.gz", input.filename),
                digests: stored.digests,
                extras: input.extras,
            })
        })
    }
}
