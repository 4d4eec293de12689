//! Signing keys of the `sign` step: public parts in the clear, the secret sealed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub id: String,
    pub name: String,
    /// minisign's key id (16 hex digits).
    pub key_id: String,
    /// The minisign public key file's text.
    pub public_key: String,
    /// The secret key, sealed under the server key (`signing-key:<id>`).
    pub secret_sealed: String,
    pub created_at: NaiveDateTime,
}

super::row_writes!(signing_keys, SigningKey);

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<SigningKey>> {
    signing_keys::table.find(id).select(SigningKey::as_select()).get_result(conn).optional()
}

/// By id, name or minisign key id.
pub fn find_by_ref(conn: &mut AnyConnection, raw: &str) -> QueryResult<Option<SigningKey>> {
    signing_keys::table
        .filter(signing_keys::id.eq(raw).or(signing_keys::name.eq(raw)).or(signing_keys::key_id.eq(raw.to_uppercase())))
        .select(SigningKey::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<SigningKey>> {
    signing_keys::table.order(signing_keys::created_at).select(SigningKey::as_select()).load(conn)
}

/// Replaces a key's sealed secret (re-sealing under a new server key).
pub fn set_sealed(conn: &mut AnyConnection, id: &str, sealed: &str) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(id)).set(signing_keys::secret_sealed.eq(sealed)).execute(conn).map(drop)
}
