//! Secrets the server must use again later (a DMF thing's target token, a signing key) are
//! kept in the database **sealed**: encrypted with XChaCha20-Poly1305 under a server key that
//! lives outside the database (`DEVICEHUB_SEALING_KEY` or the file `DEVICEHUB_SEALING_KEY_FILE`,
//! by default `<data_dir>/sealing.key`, created on the first start). A database dump alone
//! therefore reveals nothing usable.
//!
//! A sealed value reads `dh1:<key id>:<hex of nonce ‖ ciphertext>`. The key id tells which
//! key sealed it, so keys rotate without a flag day: put the new key first and keep the old
//! ones after it (one per line in the file, comma-separated in the environment), run
//! `devicehub reseal` (every sealed value is sealed again under the first key), then drop the
//! old ones. The `context` (e.g. `device-target-token:<id>`) is authenticated with the value,
//! so a sealed value copied to another row does not open there.
//!
//! Every instance of one installation needs the same keys. A canary sealed at the first start
//! (`server_secrets.sealing_canary`) makes an instance with other keys refuse to start with a
//! message that says so, instead of failing later on each sealed value.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::db::{self, AnyConnection, Db};
use crate::error::{Error, Result};
use crate::settings::Settings;

const PREFIX: &str = "dh1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const CANARY_NAME: &str = "sealing_canary";
const CANARY_CONTEXT: &str = "sealing-canary";
const CANARY_TEXT: &[u8] = b"devicehub sealing canary";

/// One sealing key and its short id.
struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl SealingKey {
    fn from_bytes(bytes: &[u8]) -> anyhow::Result<SealingKey> {
        if bytes.len() != KEY_LEN {
            bail!("a sealing key is {KEY_LEN} bytes (64 hex digits), not {}", bytes.len());
        }
        let digest = Sha256::new().chain_update(b"devicehub sealing key id\0").chain_update(bytes).finalize();
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| anyhow!("invalid sealing key"))?;
        Ok(SealingKey { id: hex::encode(&digest[..4]), cipher })
    }
}

/// Seals and opens values; the first key seals, all of them open.
pub struct Sealer {
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// Keys from hex strings, the sealing key first.
    pub fn from_hex_keys<S: AsRef<str>>(keys: &[S]) -> anyhow::Result<Sealer> {
        let keys = keys
            .iter()
            .map(|k| {
                let bytes = hex::decode(k.as_ref().trim()).context("a sealing key must be hex")?;
                SealingKey::from_bytes(&bytes)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if keys.is_empty() {
            bail!("no sealing key given");
        }
        Ok(Sealer { keys })
    }

    /// The keys the settings name: `sealing_key` (comma-separated), else the key file (one
    /// per line, `#` comments), else `<data_dir>/sealing.key`, created with a new key
    /// (readable by the owner only) when it does not exist.
    pub fn load(settings: &Settings) -> anyhow::Result<Sealer> {
        if let Some(keys) = &settings.sealing_key {
            let keys: Vec<&str> = keys.expose().split(',').filter(|k| !k.trim().is_empty()).collect();
            return Sealer::from_hex_keys(&keys).context("DEVICEHUB_SEALING_KEY");
        }
        let (path, create) = match &settings.sealing_key_file {
            Some(path) => (path.clone(), false),
            None => (settings.data_dir.join("sealing.key"), true),
        };
        if create && !path.exists() {
            write_new_key_file(&path)?;
            tracing::info!(file = %path.display(), "the sealing key is here; keep it apart from database backups");
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading the sealing key {}", path.display()))?;
        let keys: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        Sealer::from_hex_keys(&keys).with_context(|| format!("the sealing key file {}", path.display()))
    }

    /// A new random key, as hex (what `sealing.key` holds).
    pub fn generate_key() -> String {
        hex::encode(rand::random::<[u8; KEY_LEN]>())
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plaintext` for `context` under the first key.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let key = &self.keys[0];
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        #[expect(clippy::expect_used, reason = "XChaCha20-Poly1305 encryption fails only past 256 GiB")]
        let sealed = key.cipher.encrypt(nonce, Payload { msg: plaintext, aad: context.as_bytes() }).expect("seal");
        let mut body = nonce_bytes.to_vec();
        body.extend_from_slice(&sealed);
        format!("{PREFIX}:{}:{}", key.id, hex::encode(body))
    }

    /// Opens a value sealed for `context` by any of the keys.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>> {
        let fail = |why: &str| Error::Internal(anyhow!("a sealed value for {context} does not open: {why}"));
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(fail("not a sealed value"));
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| fail(&format!("sealed under key {id}, which this server was not given")))?;
        let body = hex::decode(body).map_err(|_| fail("damaged"))?;
        if body.len() < NONCE_LEN {
            return Err(fail("damaged"));
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| fail("wrong key, wrong context or altered"))
    }

    /// The value sealed again under the first key, or `None` when it already is.
    pub fn reseal(&self, sealed: &str, context: &str) -> Result<Option<String>> {
        if sealed.split(':').nth(1) == Some(self.current_key_id()) {
            return Ok(None);
        }
        let plain = self.open(sealed, context)?;
        Ok(Some(self.seal(&plain, context)))
    }

    /// At start-up: records the canary on the first start, and refuses keys that cannot open
    /// the canary an earlier start (maybe another instance) sealed.
    pub async fn check_against(self: &std::sync::Arc<Self>, db: &Db) -> anyhow::Result<()> {
        let sealer = self.clone();
        let canary = db
            .run(move |conn| {
                Ok(db::secret::get_or_create(conn, CANARY_NAME, || sealer.seal(CANARY_TEXT, CANARY_CONTEXT))?)
            })
            .await?;
        match self.open(&canary, CANARY_CONTEXT) {
            Ok(text) if text == CANARY_TEXT => Ok(()),
            _ => bail!(
                "the sealing key does not match this database: it was first started with another key \
                 (key id {}). Give every instance the same keys (DEVICEHUB_SEALING_KEY or \
                 DEVICEHUB_SEALING_KEY_FILE; the first start wrote <data_dir>/sealing.key)",
                canary.split(':').nth(1).unwrap_or("unknown")
            ),
        }
    }
}

/// Writes a new key file readable by its owner only. Two instances starting at once on one
/// data directory must end with one key: the file is written aside and linked into place,
/// which fails when the other was first (then its key is used).
fn write_new_key_file(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = format!(
        "# devicehub sealing key: keep it apart from database backups. To rotate, put a new key\n\
         # (64 hex digits) on the first line, keep this one below it, run `devicehub reseal`.\n{}\n",
        Sealer::generate_key()
    );
    let aside = dir.join(format!(".sealing.key.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&aside).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// How many sealed values `reseal_all` sealed again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    pub values: usize,
}

/// `devicehub reseal`: every sealed value sealed again under the first key, in one
/// transaction (a failure changes nothing).
pub async fn reseal_everything(db: &Db, sealer: std::sync::Arc<Sealer>) -> Result<Resealed> {
    db.run(move |conn| db::write_transaction_retrying(conn, |conn| reseal_all(conn, &sealer))).await
}

/// Seals every sealed value again under the first key. Each sealed column adds itself here.
pub fn reseal_all(conn: &mut AnyConnection, sealer: &Sealer) -> Result<Resealed> {
    let mut done = Resealed::default();
    if let Some(canary) = db::secret::find(conn, CANARY_NAME)?
        && let Some(new) = sealer.reseal(&canary, CANARY_CONTEXT)?
    {
        db::secret::replace(conn, CANARY_NAME, &new)?;
        done.values += 1;
    }
    // DMF: the devices' target tokens
    for (id, sealed) in db::device::sealed_tokens(conn)? {
        if let Some(new) = sealer.reseal(&sealed, &super::devices::token_context(&id))? {
            let changes = db::device::DeviceChanges { target_token_sealed: Some(Some(new)), ..Default::default() };
            db::device::update(conn, &id, &changes)?;
            done.values += 1;
        }
    }
    // signing keys of the `sign` step
    for key in db::signing_key::list(conn)? {
        if let Some(new) = sealer.reseal(&key.secret_sealed, &super::signing_keys::context(&key.id))? {
            db::signing_key::set_sealed(conn, &key.id, &new)?;
            done.values += 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(keys: &[&str]) -> Sealer {
        #[expect(clippy::expect_used, reason = "test keys are valid")]
        Sealer::from_hex_keys(keys).expect("keys")
    }

    const A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn opens_what_it_sealed_only_in_its_context() -> Result<()> {
        let s = sealer(&[A]);
        let sealed = s.seal(b"token", "device-target-token:1");
        assert!(sealed.starts_with("dh1:") && !sealed.contains("token"));
        assert_eq!(s.open(&sealed, "device-target-token:1")?, b"token");
        assert!(s.open(&sealed, "device-target-token:2").is_err(), "another row's context");
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert!(s.open(&altered, "device-target-token:1").is_err());
        assert_ne!(s.seal(b"token", "c"), s.seal(b"token", "c"), "a fresh nonce each time");
        Ok(())
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_reseals_them() -> Result<()> {
        let old = sealer(&[A]).seal(b"secret", "ctx");
        let rotated = sealer(&[B, A]);
        assert_eq!(rotated.open(&old, "ctx")?, b"secret");
        let new = rotated.reseal(&old, "ctx")?.ok_or_else(|| Error::Internal(anyhow!("not resealed")))?;
        assert_eq!(rotated.reseal(&new, "ctx")?, None, "already under the first key");
        assert_eq!(sealer(&[B]).open(&new, "ctx")?, b"secret");
        let unknown = sealer(&[B]).open(&old, "ctx").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(unknown.contains("was not given"), "{unknown}");
        Ok(())
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Sealer::from_hex_keys(&["abcd"]).is_err());
        assert!(Sealer::from_hex_keys(&["zz"]).is_err());
        assert!(Sealer::from_hex_keys::<&str>(&[]).is_err());
    }
}
