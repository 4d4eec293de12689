//! `manifest`: passes the previous output through and publishes what it is
//! (`payload.manifest`: model, version, image SHA-256, file name, size, SHA-256), so a device
//! can check what it received. Unsigned; the signing step of the procedures issue signs one.

use futures_util::future::BoxFuture;
use serde_json::json;

use super::{Context, Step, StepConfig};
use crate::error::Result;
use crate::pipeline::Output;

pub struct Manifest;

impl Step for Manifest {
    fn name(&self) -> &'static str {
        "manifest"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Manifest)
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let mut next = input;
            let manifest = json!({
                "model": ctx.work.model,
                "version": ctx.work.version,
                "image_sha256": ctx.work.image.digests.sha256,
                "filename": next.filename,
                "size": next.digests.size,
                "sha256": next.digests.sha256,
            });
            next.extras.insert("manifest".into(), manifest);
            Ok(next)
        })
    }
}
