//! `sign`: signs the previous output with Ed25519 as a `minisign` signature, and publishes a
//! JSON manifest of what was delivered (see `docs/deliverable-format.md`). The deliverable
//! itself passes through unchanged; the signature (`payload.signature`, DDI artifact
//! `<file>.minisig`) and the manifest (`payload.signed_manifest`, `<file>.manifest.json`)
//! come with it. The signature's trusted comment carries the manifest's SHA-256, so one
//! `minisign -V` checks the deliverable and, through the comment, the manifest.
//!
//! `{"type": "sign", "key": "<signing key id>"}`: a key created or imported through the
//! admin API (`/api/v1/signing-keys/`); its secret is stored sealed and opened only for the run.
//!
//! Streams: memory is one 64 KiB read buffer (minisign signs a BLAKE2b-512 hash of the file).

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Step, StepConfig};
use crate::error::{Error, Result};
use crate::pipeline::deliverable::{Described, Manifest, trusted_comment};
use crate::pipeline::{Output, Work, stream};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// The signing key's id.
    pub key: String,
}

impl Sign {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if uuid::Uuid::parse_str(&self.key).is_err() {
            return Err(format!("key {:?} is not a signing key id", self.key));
        }
        Ok(())
    }
}

impl Step for Sign {
    fn name(&self) -> &'static str {
        "sign"
    }

    fn fingerprint(&self) -> String {
        super::canonical(&StepConfig::Sign(self.clone()))
    }

    fn inputs(&self, work: &Work) -> Option<String> {
        // the manifest names the firmware (and the device, for per-device output)
        let device = work.per_device_device().unwrap_or_default();
        Some(format!("firmware:{}:device:{device}", work.firmware_id))
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, input: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let work = ctx.work;
            let key = work
                .sign_key
                .as_ref()
                .filter(|k| k.id == self.key)
                .ok_or_else(|| Error::internal(format!("signing key {} is not available", self.key)))?;
            let secret = minisign::SecretKey::from_bytes(&key.secret)
                .map_err(|e| Error::internal(format!("signing key {}: {e}", key.id)))?;
            let public = minisign::PublicKey::from_secret_key(&secret)
                .map_err(|e| Error::internal(format!("signing key {}: {e}", key.id)))?;
            let manifest = Manifest::describe(&Described {
                work,
                steps: &work.steps[..ctx.index],
                deliverable: &input,
                key_id: &crate::pipeline::deliverable::key_id_hex(&public),
            });
            let manifest_text = manifest.to_text();
            let comment = trusted_comment(&manifest_text, &input.filename);
            let untrusted = format!("signature from devicehub signing key {}", key.id);
            let signature = stream::consume(ctx.storage, &input, "sign", move |source| {
                minisign::sign(Some(&public), &secret, source, Some(&comment), Some(&untrusted))
                    .map(|b| b.into_string())
                    .map_err(std::io::Error::other)
            })
            .await?;
            let mut next = input;
            next.extras.insert("signature".into(), Value::String(signature));
            next.extras.insert("signed_manifest".into(), Value::String(manifest_text));
            next.extras.insert("signing_key".into(), Value::String(key.id.clone()));
            Ok(next)
        })
    }
}
