//! Signing keys for the `sign` step: created here or imported from `minisign -G`, admin
//! only. The secret key never leaves: it is stored sealed under the server key (bound to
//! its row, `signing-key:<id>`), opened only in memory for a pipeline run, and never
//! returned by any route. Public keys are public: `GET /api/v1/public-keys/` lists them
//! for devices and build systems without a token.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::Actor;
use crate::db::{self, AnyConnection};
use crate::domain::ids::validate_name;
use crate::domain::rights::{Action, Scope};
use crate::error::{Error, Result};
use crate::pipeline::SignKey;
use crate::pipeline::deliverable::key_id_hex;
use crate::service::Hub;
use crate::time;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKey {
    pub name: String,
    /// Import: a minisign secret key file's text (`minisign -G`); absent: a new key is made.
    pub secret_key: Option<String>,
    /// The imported key's password, if it is encrypted.
    pub password: Option<String>,
}

/// A signing key as clients see it: never its secret.
#[derive(Debug, Serialize)]
pub struct SigningKeyView {
    pub id: String,
    pub name: String,
    /// minisign's key id, as `minisign -V` prints it.
    pub key_id: String,
    /// The minisign public key file (give it to `minisign -V -p`, or its second line to `-P`).
    pub public_key: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
}

fn view(k: db::signing_key::SigningKey) -> SigningKeyView {
    SigningKeyView { id: k.id, name: k.name, key_id: k.key_id, public_key: k.public_key, created_at: k.created_at }
}

/// The sealing context of a key's secret: a sealed value copied to another row does not open.
pub(super) fn context(id: &str) -> String {
    format!("signing-key:{id}")
}

fn secret_of(input: &NewSigningKey) -> Result<minisign::SecretKey> {
    let Some(text) = &input.secret_key else {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(Error::internal)?;
        return Ok(pair.sk);
    };
    let bad = |e: minisign::PError| Error::invalid(format!("secret_key: {e}"));
    let sealed_box = minisign::SecretKeyBox::from_string(text.trim()).map_err(bad)?;
    match &input.password {
        Some(password) => minisign::SecretKey::from_box(sealed_box, Some(password.clone())).map_err(bad),
        None => minisign::SecretKey::from_unencrypted_box(sealed_box).map_err(|_| {
            Error::invalid("secret_key: the key is encrypted (or not a minisign secret key): give its password")
        }),
    }
}

pub async fn create(hub: &Hub, actor: &Actor, input: NewSigningKey) -> Result<SigningKeyView> {
    actor.require(Action::Manage, Scope::Global)?;
    validate_name("name", &input.name)?;
    let secret = secret_of(&input)?;
    let public =
        minisign::PublicKey::from_secret_key(&secret).map_err(|e| Error::invalid(format!("secret_key: {e}")))?;
    let public_text = public.to_box().map_err(Error::internal)?.to_string();
    let id = uuid::Uuid::now_v7().to_string();
    let row = db::signing_key::SigningKey {
        secret_sealed: hub.sealer.seal(&secret.to_bytes(), &context(&id)),
        id,
        name: input.name.clone(),
        key_id: key_id_hex(&public),
        public_key: public_text,
        created_at: time::now(),
    };
    hub.db
        .run(move |conn| {
            db::signing_key::insert(conn, &row).map_err(Error::from).map_err(super::duplicate(
                "signing key",
                "name",
                &row.name,
            ))?;
            Ok(view(row))
        })
        .await
}

pub async fn list(hub: &Hub, actor: &Actor) -> Result<Vec<SigningKeyView>> {
    if !actor.has_any_grant() {
        return Err(Error::forbidden(format!("user '{}' holds no grant", actor.username)));
    }
    public_keys(hub).await
}

/// Every key's public part: for anyone, devices included.
pub async fn public_keys(hub: &Hub) -> Result<Vec<SigningKeyView>> {
    hub.db.run(|conn| Ok(db::signing_key::list(conn)?.into_iter().map(view).collect())).await
}

/// One key's public key file, by id, name or minisign key id.
pub async fn public_key(hub: &Hub, raw: String) -> Result<String> {
    hub.db
        .run(move |conn| {
            let key = db::signing_key::find_by_ref(conn, &raw)?;
            key.map(|k| k.public_key).ok_or_else(|| Error::not_found(format!("signing key {raw:?}")))
        })
        .await
}

/// Checks that the keys a procedure's steps name exist (a 422 otherwise).
pub fn check_exist(conn: &mut AnyConnection, ids: &[&str]) -> Result<()> {
    for id in ids {
        if db::signing_key::find(conn, id)?.is_none() {
            return Err(Error::unprocessable("unknown_reference", format!("steps: signing key {id} does not exist")));
        }
    }
    Ok(())
}

/// The key a run signs with, its secret opened.
pub async fn open(hub: &Hub, id: &str) -> Result<SignKey> {
    let wanted = id.to_owned();
    let row = hub
        .db
        .run(move |conn| {
            db::signing_key::find(conn, &wanted)?.ok_or_else(|| Error::not_found(format!("signing key {wanted}")))
        })
        .await?;
    let secret = hub.sealer.open(&row.secret_sealed, &context(&row.id))?;
    Ok(SignKey { id: row.id, secret })
}
