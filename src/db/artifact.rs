//! Pipeline outputs, content-addressed by a hash of their inputs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::artifacts;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = artifacts)]
pub struct ArtifactRow {
    pub cache_key: String,
    pub object_key: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    /// JSON object the steps add to the payload (e.g. a manifest).
    pub extras: String,
    pub created_at: NaiveDateTime,
}

pub fn find(conn: &mut AnyConnection, cache_key: &str) -> QueryResult<Option<ArtifactRow>> {
    artifacts::table.find(cache_key).select(ArtifactRow::as_select()).get_result(conn).optional()
}

/// Records an output unless another run recorded the same inputs first; returns the row
/// that won, which is what the key means from now on.
pub fn insert_or_keep(conn: &mut AnyConnection, row: &ArtifactRow) -> QueryResult<ArtifactRow> {
    let insert = diesel::insert_into(artifacts::table).values(row);
    match conn {
        AnyConnection::Postgresql(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        AnyConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    find(conn, &row.cache_key)?.ok_or(diesel::result::Error::NotFound)
}

pub fn delete(conn: &mut AnyConnection, cache_key: &str) -> QueryResult<usize> {
    diesel::delete(artifacts::table.find(cache_key)).execute(conn)
}

/// How many outputs are recorded.
pub fn count(conn: &mut AnyConnection) -> QueryResult<i64> {
    artifacts::table.count().get_result(conn)
}

/// The object keys of every recorded output.
pub fn object_keys(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    artifacts::table.select(artifacts::object_key).load(conn)
}

/// Forgets every output stored in `object_key` (the next identical run makes it anew).
pub fn delete_by_object_key(conn: &mut AnyConnection, object_key: &str) -> QueryResult<usize> {
    diesel::delete(artifacts::table.filter(artifacts::object_key.eq(object_key))).execute(conn)
}

/// Outputs recorded before `cutoff`.
pub fn recorded_before(conn: &mut AnyConnection, cutoff: NaiveDateTime) -> QueryResult<Vec<ArtifactRow>> {
    artifacts::table.filter(artifacts::created_at.lt(cutoff)).select(ArtifactRow::as_select()).load(conn)
}
