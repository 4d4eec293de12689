//! Integrity checks of stored objects (`service::scrub`): one row per object key a firmware
//! image or a pipeline output lives in, with the size and SHA-256 recorded when it was written.
//! A scrubber claims a due row with a lease (as workers claim jobs), so two instances never
//! hash the same object at once, and records what it found; a row whose object no longer
//! matches is quarantined.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{artifacts, firmware, object_checks, sessions};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = object_checks)]
pub struct ObjectCheck {
    pub object_key: String,
    pub size: i64,
    pub sha256: String,
    pub checked_at: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub quarantined_at: Option<NaiveDateTime>,
    pub found_size: Option<i64>,
    pub found_sha256: Option<String>,
    pub created_at: NaiveDateTime,
}

impl ObjectCheck {
    fn new(object_key: String, size: i64, sha256: String, now: NaiveDateTime) -> ObjectCheck {
        ObjectCheck {
            object_key,
            size,
            sha256,
            checked_at: None,
            lease_owner: None,
            lease_until: None,
            quarantined_at: None,
            found_size: None,
            found_sha256: None,
            created_at: now,
        }
    }
}

/// A row for `key` unless one exists (two instances may add the same at once).
fn insert_new(conn: &mut AnyConnection, row: &ObjectCheck) -> QueryResult<()> {
    let insert = diesel::insert_into(object_checks::table).values(row);
    match conn {
        AnyConnection::Postgresql(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        AnyConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    Ok(())
}

/// Adds a row for every stored image and recorded output that has none, and removes the rows
/// of objects nothing refers to any more: no firmware, no recorded output, no live session.
pub fn sync(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<()> {
    let unchecked =
        not(exists(object_checks::table.filter(object_checks::object_key.nullable().eq(firmware::object_key))));
    let images: Vec<(Option<String>, Option<i64>, Option<String>)> = firmware::table
        .filter(
            firmware::object_key.is_not_null().and(firmware::size.is_not_null()).and(firmware::sha256.is_not_null()),
        )
        .filter(unchecked)
        .select((firmware::object_key, firmware::size, firmware::sha256))
        .load(conn)?;
    for (key, size, sha256) in images {
        if let (Some(key), Some(size), Some(sha256)) = (key, size, sha256) {
            insert_new(conn, &ObjectCheck::new(key, size, sha256, now))?;
        }
    }
    let outputs: Vec<(String, i64, String)> = artifacts::table
        .filter(not(exists(object_checks::table.filter(object_checks::object_key.eq(artifacts::object_key)))))
        .select((artifacts::object_key, artifacts::size, artifacts::sha256))
        .distinct()
        .load(conn)?;
    for (key, size, sha256) in outputs {
        insert_new(conn, &ObjectCheck::new(key, size, sha256, now))?;
    }
    let by_firmware = exists(firmware::table.filter(firmware::object_key.eq(object_checks::object_key.nullable())));
    let by_output = exists(artifacts::table.filter(artifacts::object_key.eq(object_checks::object_key)));
    let by_session = exists(
        sessions::table
            .filter(sessions::artifact_key.eq(object_checks::object_key.nullable()))
            .filter(sessions::expired_at.is_null()),
    );
    diesel::delete(object_checks::table.filter(not(by_firmware.or(by_output).or(by_session)))).execute(conn)?;
    Ok(())
}

/// Whether a firmware, a recorded output or a live session refers to `key`.
pub fn is_referenced(conn: &mut AnyConnection, key: &str) -> QueryResult<bool> {
    let by_firmware = exists(firmware::table.filter(firmware::object_key.eq(key)));
    let by_output = exists(artifacts::table.filter(artifacts::object_key.eq(key)));
    let by_session =
        exists(sessions::table.filter(sessions::artifact_key.eq(key)).filter(sessions::expired_at.is_null()));
    diesel::select(by_firmware.or(by_output).or(by_session)).get_result(conn)
}

/// Claims the object checked longest ago (never checked first) among those last checked
/// before `due_before`, for `owner` until `lease_until`. Must run in a write transaction:
/// on PostgreSQL the candidate is locked with `SKIP LOCKED`, on SQLite the transaction holds
/// the write lock.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    due_before: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<ObjectCheck>> {
    let due = object_checks::checked_at.is_null().or(object_checks::checked_at.lt(due_before));
    let free = object_checks::lease_until.is_null().or(object_checks::lease_until.lt(now));
    let order = (object_checks::checked_at.is_not_null(), object_checks::checked_at, object_checks::object_key);
    let candidate: Option<String> = match conn {
        AnyConnection::Postgresql(pg) => object_checks::table
            .filter(due.and(free))
            .order(order)
            .select(object_checks::object_key)
            .limit(1)
            .for_update()
            .skip_locked()
            .first(pg)
            .optional()?,
        AnyConnection::Sqlite(lite) => object_checks::table
            .filter(due.and(free))
            .order(order)
            .select(object_checks::object_key)
            .limit(1)
            .first(lite)
            .optional()?,
    };
    let Some(key) = candidate else { return Ok(None) };
    let claimed = diesel::update(object_checks::table.find(&key).filter(due.and(free)))
        .set((object_checks::lease_owner.eq(owner), object_checks::lease_until.eq(lease_until)))
        .execute(conn)?;
    if claimed == 0 {
        return Ok(None);
    }
    find(conn, &key)
}

pub fn find(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<ObjectCheck>> {
    object_checks::table.find(key).select(ObjectCheck::as_select()).get_result(conn).optional()
}

/// The row of `key` if it is quarantined.
pub fn quarantined(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<ObjectCheck>> {
    object_checks::table
        .find(key)
        .filter(object_checks::quarantined_at.is_not_null())
        .select(ObjectCheck::as_select())
        .get_result(conn)
        .optional()
}

/// Extends a check's lease; `false`: it is no longer `owner`'s.
pub fn heartbeat(conn: &mut AnyConnection, key: &str, owner: &str, lease_until: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(object_checks::table.find(key).filter(object_checks::lease_owner.eq(owner)))
        .set(object_checks::lease_until.eq(lease_until))
        .execute(conn)?;
    Ok(n == 1)
}

/// What a check found: the size and SHA-256 of the stored bytes (`None`: the object is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub size: i64,
    pub sha256: String,
}

/// Records a finished check and releases the lease, if `owner` still holds it: when it was,
/// what it found, and whether the object is quarantined from now on (keeping the time it
/// was first quarantined). Returns whether it did.
pub fn finish(
    conn: &mut AnyConnection,
    key: &str,
    owner: &str,
    now: NaiveDateTime,
    found: Option<&Found>,
    quarantined_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    let n = diesel::update(object_checks::table.find(key).filter(object_checks::lease_owner.eq(owner)))
        .set((
            object_checks::checked_at.eq(now),
            object_checks::lease_owner.eq(None::<String>),
            object_checks::lease_until.eq(None::<NaiveDateTime>),
            object_checks::found_size.eq(found.map(|f| f.size)),
            object_checks::found_sha256.eq(found.map(|f| f.sha256.clone())),
            object_checks::quarantined_at.eq(quarantined_at),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives a check back unfinished (the store did not answer): no scrubber claims it again
/// before `until`.
pub fn postpone(conn: &mut AnyConnection, key: &str, owner: &str, until: NaiveDateTime) -> QueryResult<()> {
    diesel::update(object_checks::table.find(key).filter(object_checks::lease_owner.eq(owner)))
        .set((object_checks::lease_owner.eq(None::<String>), object_checks::lease_until.eq(until)))
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut AnyConnection, key: &str) -> QueryResult<()> {
    diesel::delete(object_checks::table.find(key)).execute(conn).map(drop)
}

/// How many objects are quarantined, and when the last check finished.
pub fn summary(conn: &mut AnyConnection) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let quarantined =
        object_checks::table.filter(object_checks::quarantined_at.is_not_null()).count().get_result(conn)?;
    let last = object_checks::table.select(diesel::dsl::max(object_checks::checked_at)).get_result(conn)?;
    Ok((quarantined, last))
}
