//! `image`: the firmware image as it is. Writes nothing; the deliverable may simply be the
//! image itself.

use futures_util::future::BoxFuture;

use super::{Context, Step, StepConfig};
use crate::error::Result;
use crate::pipeline::Output;

pub struct Image;

impl Step for Image {
    fn name(&self) -> &'static str {
        "image"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Image)
    }

    fn run<'a>(&'a self, _ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move { Ok(input) })
    }
}
