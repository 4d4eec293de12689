//! The signed deliverable (see `docs/deliverable-format.md`): the manifest the `sign` step
//! writes, and [`verify`], which undoes a procedure's steps on the device's side — checks
//! the signature and the manifest, decrypts, decompresses, applies the delta — and writes
//! the exact target image, or says which check failed. `devicehub verify` runs it.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::steps::StepConfig;
use super::steps::compress::Algorithm;
use super::{Output, Work};

/// The manifest's `format`.
pub const FORMAT: &str = "devicehub-manifest/1";

/// How the signature's trusted comment vouches for the manifest.
const COMMENT_PREFIX: &str = "devicehub-manifest-sha256:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// What a device received and how to turn it back into the target image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub firmware_id: String,
    pub model: String,
    pub version: String,
    /// The firmware image the device must end up with.
    pub target: FileInfo,
    /// The file it downloads.
    pub deliverable: FileInfo,
    /// The steps applied to the target, in order (undo them last to first).
    pub steps: Vec<Value>,
    /// The version the delta starts from, when a delta was applied.
    pub base_version: Option<String>,
    /// The device a per-device (encrypted-to-the-device) deliverable is for.
    pub device: Option<String>,
    /// The minisign key id (hex) of the signing key.
    pub key_id: String,
}

/// What the `sign` step describes.
pub struct Described<'a> {
    pub work: &'a Work,
    /// The steps before `sign`.
    pub steps: &'a [StepConfig],
    pub deliverable: &'a Output,
    pub key_id: &'a str,
}

impl Manifest {
    pub fn describe(d: &Described<'_>) -> Manifest {
        let extras = &d.deliverable.extras;
        let delta = extras.get("delta").filter(|v| v["applied"] == json!(true));
        let mut steps = Vec::new();
        for step in d.steps {
            match step {
                StepConfig::Image | StepConfig::Manifest | StepConfig::Sign(_) => {}
                StepConfig::Gzip(g) => steps.push(json!({"type": "compress", "algorithm": "gzip", "level": g.level})),
                StepConfig::Compress(c) => steps.push(json!({
                    "type": "compress",
                    "algorithm": c.algorithm,
                    "window_log": extras.get("compression").and_then(|x| x.get("window_log")).cloned(),
                })),
                StepConfig::Delta(_) => {
                    if let Some(delta) = delta {
                        let mut described = delta.clone();
                        described["type"] = json!("delta");
                        steps.push(described);
                    }
                }
                StepConfig::Encrypt(_) => {
                    let mut described = extras.get("encryption").cloned().unwrap_or_else(|| json!({}));
                    described["type"] = json!("encrypt");
                    steps.push(described);
                }
            }
        }
        let image = &d.work.image;
        Manifest {
            format: FORMAT.to_owned(),
            firmware_id: d.work.firmware_id.clone(),
            model: d.work.model.clone(),
            version: d.work.version.clone(),
            target: FileInfo {
                filename: image.filename.clone(),
                size: image.digests.size,
                sha256: image.digests.sha256.clone(),
            },
            deliverable: FileInfo {
                filename: d.deliverable.filename.clone(),
                size: d.deliverable.digests.size,
                sha256: d.deliverable.digests.sha256.clone(),
            },
            steps,
            base_version: delta.and_then(|v| v["base_version"].as_str()).map(str::to_owned),
            device: d.work.per_device_device(),
            key_id: d.key_id.to_owned(),
        }
    }

    /// The manifest file's exact bytes (pretty JSON and a newline).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The minisign key id, as `minisign` prints it (16 hex digits).
pub fn key_id_hex(public: &minisign::PublicKey) -> String {
    let mut id = [0u8; 8];
    id.copy_from_slice(&public.keynum()[..8]);
    format!("{:016X}", u64::from_le_bytes(id))
}

/// The signature's trusted comment: the manifest's SHA-256 and the deliverable's name.
pub fn trusted_comment(manifest_text: &str, filename: &str) -> String {
    format!("{COMMENT_PREFIX}{} file:{filename}", hex::encode(Sha256::digest(manifest_text.as_bytes())))
}

/// A minisign public key: a `.pub` file's text, or its base64 line alone.
pub fn parse_public_key(text: &str) -> Result<minisign::PublicKey, String> {
    let text = text.trim();
    let parsed = if text.contains('\n') {
        minisign::PublicKeyBox::from_string(text).and_then(|b| b.into_public_key())
    } else {
        minisign::PublicKey::from_base64(text)
    };
    parsed.map_err(|e| format!("public key: not a minisign public key ({e})"))
}

/// What `devicehub verify` is given.
#[derive(Debug, Clone)]
pub struct Check {
    pub deliverable: PathBuf,
    pub signature: PathBuf,
    pub manifest: PathBuf,
    /// The minisign public key (file text or base64 line).
    pub public_key: String,
    /// The device's age identity file, for an encrypted deliverable.
    pub identity: Option<PathBuf>,
    /// The image of the base version, for a delta.
    pub base: Option<PathBuf>,
    /// Where the target image goes.
    pub output: PathBuf,
}

/// Why a check failed; each says which check it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Failed(pub String);

fn failed(what: impl Into<String>) -> Failed {
    Failed(what.into())
}

fn read_text(path: &Path, what: &str) -> Result<String, Failed> {
    std::fs::read_to_string(path).map_err(|e| failed(format!("{what}: cannot read {}: {e}", path.display())))
}

fn sha256_of_file(path: &Path) -> io::Result<(u64, String)> {
    let mut out = HashingWriter { file: None, sha256: Sha256::new(), size: 0 };
    io::copy(&mut BufReader::new(File::open(path)?), &mut out)?;
    Ok((out.size, hex::encode(out.sha256.finalize())))
}

/// Checks the signature and the manifest, undoes the steps and writes the target image.
/// Answers the manifest.
pub fn verify(check: &Check) -> Result<Manifest, Failed> {
    let public = parse_public_key(&check.public_key).map_err(failed)?;
    let signature_text = read_text(&check.signature, "signature")?;
    let signature = minisign::SignatureBox::from_string(&signature_text)
        .map_err(|e| failed(format!("signature: not a minisign signature ({e})")))?;
    if signature.keynum() != public.keynum() {
        let mut id = [0u8; 8];
        id.copy_from_slice(&signature.keynum()[..8]);
        return Err(failed(format!(
            "signature: made by key {:016X}, not by the given public key {} (wrong public key)",
            u64::from_le_bytes(id),
            key_id_hex(&public)
        )));
    }
    let file = File::open(&check.deliverable)
        .map_err(|e| failed(format!("deliverable: cannot read {}: {e}", check.deliverable.display())))?;
    minisign::verify(&public, &signature, BufReader::new(file), true, false, false).map_err(|e| {
        failed(format!("signature: the deliverable does not match its signature (changed or cut short): {e}"))
    })?;
    // the trusted comment is covered by the signature: it vouches for the manifest
    let comment = signature.trusted_comment().map_err(|e| failed(format!("signature: {e}")))?;
    let vouched = comment
        .strip_prefix(COMMENT_PREFIX)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| failed("signature: its trusted comment names no devicehub manifest"))?;
    let manifest_text = read_text(&check.manifest, "manifest")?;
    let found = hex::encode(Sha256::digest(manifest_text.as_bytes()));
    if found != vouched {
        return Err(failed(format!(
            "manifest: its SHA-256 {found} is not the {vouched} the signature vouches for (the manifest was changed)"
        )));
    }
    let manifest: Manifest = serde_json::from_str(&manifest_text)
        .map_err(|e| failed(format!("manifest: not a devicehub manifest ({e})")))?;
    let (size, sha256) = sha256_of_file(&check.deliverable).map_err(|e| failed(format!("deliverable: {e}")))?;
    if size != manifest.deliverable.size || sha256 != manifest.deliverable.sha256 {
        return Err(failed(format!(
            "deliverable: {size} bytes with SHA-256 {sha256}, the manifest says {} bytes with SHA-256 {}",
            manifest.deliverable.size, manifest.deliverable.sha256
        )));
    }
    rebuild(check, &manifest)?;
    Ok(manifest)
}

/// Undoes the steps, last to first, streaming into the output, and checks the result.
fn rebuild(check: &Check, manifest: &Manifest) -> Result<(), Failed> {
    let deliverable = File::open(&check.deliverable).map_err(|e| failed(format!("deliverable: {e}")))?;
    let delta = manifest.steps.iter().find(|s| s["type"] == "delta");
    let base = match delta {
        Some(step) => read_base(check, step)?,
        None => Vec::new(),
    };
    let mut reader: Box<dyn Read + '_> = Box::new(BufReader::new(deliverable));
    for step in manifest.steps.iter().rev() {
        reader = match step["type"].as_str() {
            Some("encrypt") => decrypt(check, step, reader)?,
            Some("compress") => match serde_json::from_value::<Algorithm>(step["algorithm"].clone()) {
                Ok(Algorithm::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(reader)),
                Ok(Algorithm::Zstd) => {
                    let mut decoder =
                        zstd::stream::read::Decoder::new(reader).map_err(|e| failed(format!("decompress: {e}")))?;
                    decoder.window_log_max(31).map_err(|e| failed(format!("decompress: {e}")))?;
                    Box::new(decoder)
                }
                Err(_) => return Err(failed(format!("manifest: unknown compression {}", step["algorithm"]))),
            },
            Some("delta") => {
                let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(reader), &base)
                    .map_err(|e| failed(format!("delta: {e}")))?;
                decoder.window_log_max(31).map_err(|e| failed(format!("delta: {e}")))?;
                Box::new(decoder)
            }
            other => return Err(failed(format!("manifest: unknown step {other:?}"))),
        };
    }
    write_target(check, manifest, reader)
}

/// The base image a delta starts from, checked against the manifest.
fn read_base(check: &Check, step: &Value) -> Result<Vec<u8>, Failed> {
    let version = step["base_version"].as_str().unwrap_or("?");
    let path = check.base.as_ref().ok_or_else(|| {
        failed(format!("delta: the deliverable is a patch from version {version}; pass its image with --base"))
    })?;
    let bytes =
        std::fs::read(path).map_err(|e| failed(format!("delta: cannot read the base {}: {e}", path.display())))?;
    let found = hex::encode(Sha256::digest(&bytes));
    if Some(found.as_str()) != step["base_sha256"].as_str() {
        return Err(failed(format!(
            "delta: the base image (SHA-256 {found}) is not version {version} (SHA-256 {})",
            step["base_sha256"].as_str().unwrap_or("?")
        )));
    }
    Ok(bytes)
}

/// An age X25519 identity from an identity file (`age-keygen` output) or its key line.
pub fn parse_identity(text: &str) -> Result<age::x25519::Identity, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or("no AGE-SECRET-KEY- line in the identity file")?;
    age::x25519::Identity::from_str(line).map_err(|e| format!("not an age X25519 identity: {e}"))
}

fn decrypt<'a>(check: &Check, step: &Value, reader: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, Failed> {
    let recipient = step["recipient"].as_str().unwrap_or("?");
    let path = check.identity.as_ref().ok_or_else(|| {
        failed(format!(
            "decrypt: the deliverable is encrypted to {recipient}; pass the device's age identity with --identity"
        ))
    })?;
    let identity = parse_identity(&read_text(path, "decrypt")?).map_err(|e| failed(format!("decrypt: {e}")))?;
    let decryptor = age::Decryptor::new(reader).map_err(|e| failed(format!("decrypt: not an age file ({e})")))?;
    let identities: [&dyn age::Identity; 1] = [&identity];
    match decryptor.decrypt(identities.into_iter()) {
        Ok(plain) => Ok(Box::new(plain)),
        Err(age::DecryptError::NoMatchingKeys) => Err(failed(format!(
            "decrypt: the age identity (for {}) is not the one the deliverable was encrypted to ({recipient}): wrong identity",
            identity.to_public()
        ))),
        Err(e) => Err(failed(format!("decrypt: {e}"))),
    }
}

/// Writes what `reader` yields next to the output, checks it against the manifest's target,
/// and only then moves it into place.
fn write_target(check: &Check, manifest: &Manifest, mut reader: Box<dyn Read + '_>) -> Result<(), Failed> {
    let mut partial = check.output.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let file = File::create(&partial)?;
        let mut out = HashingWriter { file: Some(&file), sha256: Sha256::new(), size: 0 };
        io::copy(&mut reader, &mut out)?;
        file.sync_all()?;
        Ok::<_, io::Error>((out.size, hex::encode(out.sha256.finalize())))
    })();
    let (size, sha256) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(failed(format!("rebuild: undoing the steps failed: {e}")));
        }
    };
    if size != manifest.target.size || sha256 != manifest.target.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(format!(
            "target: the rebuilt image has {size} bytes with SHA-256 {sha256}, the manifest says {} bytes with SHA-256 {}",
            manifest.target.size, manifest.target.sha256
        )));
    }
    std::fs::rename(&partial, &check.output).map_err(|e| failed(format!("output: {e}")))
}

/// Hashes what passes, and writes it on to a file if there is one.
struct HashingWriter<'a> {
    file: Option<&'a File>,
    sha256: Sha256,
    size: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.file {
            Some(file) => file.write(buf)?,
            None => buf.len(),
        };
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}
