//! Claims on pipeline outputs being made (single flight): one row per cache key, held by
//! one run until it records the output or its claim expires.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::output_claims;

/// Takes the claim on `key` for `holder` if nobody holds it, or its holder let it expire.
/// `true`: it is `holder`'s now. Each statement is atomic, so of two racing runs exactly one
/// gets it, on either backend.
pub fn try_claim(
    conn: &mut AnyConnection,
    key: &str,
    holder: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let row = (output_claims::cache_key.eq(key), output_claims::holder.eq(holder), output_claims::expires_at.eq(until));
    let insert = diesel::insert_into(output_claims::table).values(row);
    let inserted = match conn {
        AnyConnection::Postgresql(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        AnyConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    if inserted == 1 {
        return Ok(true);
    }
    let taken_over = diesel::update(
        output_claims::table.filter(output_claims::cache_key.eq(key)).filter(output_claims::expires_at.lt(now)),
    )
    .set((output_claims::holder.eq(holder), output_claims::expires_at.eq(until)))
    .execute(conn)?;
    Ok(taken_over == 1)
}

/// Extends `holder`'s claim; `false` if it is no longer theirs.
pub fn renew(conn: &mut AnyConnection, key: &str, holder: &str, until: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        output_claims::table.filter(output_claims::cache_key.eq(key)).filter(output_claims::holder.eq(holder)),
    )
    .set(output_claims::expires_at.eq(until))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn release(conn: &mut AnyConnection, key: &str, holder: &str) -> QueryResult<()> {
    diesel::delete(
        output_claims::table.filter(output_claims::cache_key.eq(key)).filter(output_claims::holder.eq(holder)),
    )
    .execute(conn)
    .map(drop)
}
