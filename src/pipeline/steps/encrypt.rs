//! `encrypt`: encrypts the previous output in the `age` format (X25519 recipients) so that
//! only the device can read it. `{"type": "encrypt"}` encrypts to the device's own public
//! key (its `age_recipient`, set through the admin API); `{"type": "encrypt", "recipient":
//! "age1…"}` to one key for the whole model. A device decrypts with `age -d -i <identity>`,
//! `rage`, or the `age` crate.
//!
//! The server holds **no decryption secret**: it knows only public keys (recipients). A
//! per-device output is made for one device, so the step is where outputs stop being shared:
//! the steps before it (a delta, its compression) are made once and reused for every device.
//!
//! Streams: memory is age's 64 KiB chunk plus one 256 KiB buffer, whatever the image size.

use std::io;
use std::str::FromStr;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Context, Step, StepConfig};
use crate::error::{Error, Result};
use crate::pipeline::{Output, Work, stream};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    /// A model-wide recipient; absent: each device's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// Checks an age X25519 recipient (`age1…`), as a device's key or a step's.
pub fn parse_recipient(text: &str) -> std::result::Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(text.trim())
        .map_err(|e| format!("{text:?} is not an age X25519 recipient (age1…): {e}"))
}

impl Encrypt {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(r) = &self.recipient {
            parse_recipient(r).map(drop)?;
        }
        Ok(())
    }

    /// The recipient this run encrypts to.
    fn recipient_for(&self, work: &Work) -> Result<String> {
        if let Some(r) = &self.recipient {
            return Ok(r.clone());
        }
        let device = work
            .device
            .as_ref()
            .ok_or_else(|| Error::internal("the session names no device to encrypt to (set a model-wide recipient)"))?;
        device
            .age_recipient
            .clone()
            .ok_or_else(|| Error::internal(format!("device {} has no age_recipient to encrypt to", device.device_id)))
    }
}

impl Step for Encrypt {
    fn name(&self) -> &'static str {
        "encrypt"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Encrypt(self.clone()))
    }

    fn per_device(&self) -> bool {
        self.recipient.is_none()
    }

    fn inputs(&self, work: &Work) -> Option<String> {
        if self.recipient.is_some() {
            return None;
        }
        let device = work.device.as_ref();
        Some(format!(
            "device:{}:{}",
            device.map_or("", |d| d.device_id.as_str()),
            device.and_then(|d| d.age_recipient.as_deref()).unwrap_or("none")
        ))
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let recipient_text = self.recipient_for(ctx.work)?;
            let recipient = parse_recipient(&recipient_text).map_err(Error::internal)?;
            let stored = stream::transform(ctx.storage, &input, ctx.out_key, "encrypt", move |source, sink| {
                let recipients: [&dyn age::Recipient; 1] = [&recipient];
                let encryptor = age::Encryptor::with_recipients(recipients.into_iter()).map_err(io::Error::other)?;
                let mut writer = encryptor.wrap_output(sink)?;
                io::copy(source, &mut writer)?;
                writer.finish()?;
                Ok(())
            })
            .await?;
            let mut extras = input.extras;
            extras.insert("encryption".into(), json!({"format": "age", "recipient": recipient_text}));
            Ok(Output { key: stored.key, filename: format!("{}.age", input.filename), digests: stored.digests, extras })
        })
    }
}
