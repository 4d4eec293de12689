//! Named counters (the `counters` table): session numbers live here, and `readyz`'s write probe.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::counters;

/// Adds one to a counter, creating it at 1.
pub fn bump(conn: &mut AnyConnection, name: &str) -> QueryResult<()> {
    let insert = diesel::insert_into(counters::table).values((counters::name.eq(name), counters::value.eq(1i64)));
    match conn {
        AnyConnection::Postgresql(pg) => {
            insert.on_conflict(counters::name).do_update().set(counters::value.eq(counters::value + 1)).execute(pg)?
        }
        AnyConnection::Sqlite(lite) => {
            insert.on_conflict(counters::name).do_update().set(counters::value.eq(counters::value + 1)).execute(lite)?
        }
    };
    Ok(())
}
