//! Secrets shared by every instance, created once.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::server_secrets;

/// The secret called `name`, if it exists.
pub fn find(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<String>> {
    server_secrets::table.find(name).select(server_secrets::value).get_result(conn).optional()
}

/// The secret called `name`, created with `make` if it does not exist yet. Two instances
/// starting at once may both make one; the first insert wins and both read it back.
pub fn get_or_create(conn: &mut AnyConnection, name: &str, make: impl FnOnce() -> String) -> QueryResult<String> {
    if let Some(v) = find(conn, name)? {
        return Ok(v);
    }
    let insert = diesel::insert_into(server_secrets::table).values((
        server_secrets::name.eq(name),
        server_secrets::value.eq(make()),
        server_secrets::created_at.eq(crate::time::now()),
    ));
    match conn {
        AnyConnection::Postgresql(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        AnyConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    server_secrets::table.find(name).select(server_secrets::value).get_result(conn)
}

/// Replaces the value of an existing secret (a sealed one sealed again under a new key).
pub fn replace(conn: &mut AnyConnection, name: &str, value: &str) -> QueryResult<usize> {
    diesel::update(server_secrets::table.find(name)).set(server_secrets::value.eq(value)).execute(conn)
}
