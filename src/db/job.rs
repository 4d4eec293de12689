//! The durable job queue (pict-rs's lease shape, `style-and-crates.md` §4). Jobs are rows:
//! enqueued in the caller's transaction, claimed with a lease that a running worker keeps
//! renewing, and taken over by another worker when a crashed one's lease runs out. Every
//! write after the claim is conditional on still holding the lease.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::jobs;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub payload: String,
    pub run_at: NaiveDateTime,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn enqueue(conn: &mut AnyConnection, job: &Job) -> QueryResult<()> {
    diesel::insert_into(jobs::table).values(job).execute(conn).map(drop)
}

/// How many jobs of a kind wait or run.
pub fn count_kind(conn: &mut AnyConnection, kind: &str) -> QueryResult<i64> {
    jobs::table.filter(jobs::kind.eq(kind)).count().get_result(conn)
}

/// Jobs waiting for a worker (not leased), by kind: how many, and when the oldest was
/// enqueued. For `/metrics`: one grouped scan.
pub fn waiting_by_kind(conn: &mut AnyConnection) -> QueryResult<Vec<(String, i64, Option<NaiveDateTime>)>> {
    jobs::table
        .filter(jobs::lease_owner.is_null())
        .group_by(jobs::kind)
        .select((jobs::kind, diesel::dsl::count_star(), diesel::dsl::min(jobs::created_at)))
        .load(conn)
}

/// Claims the oldest runnable job for `owner` until `lease_until`. Must run inside a
/// write transaction: on PostgreSQL the candidate row is locked with `SKIP LOCKED` so
/// concurrent workers pass over each other; on SQLite the transaction holds the write lock.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<Job>> {
    let runnable = jobs::run_at.le(now).and(jobs::lease_until.is_null().or(jobs::lease_until.lt(now)));
    let candidate: Option<String> = match conn {
        AnyConnection::Postgresql(pg) => jobs::table
            .filter(runnable)
            .order(jobs::run_at)
            .select(jobs::id)
            .limit(1)
            .for_update()
            .skip_locked()
            .first(pg)
            .optional()?,
        AnyConnection::Sqlite(lite) => {
            jobs::table.filter(runnable).order(jobs::run_at).select(jobs::id).limit(1).first(lite).optional()?
        }
    };
    let Some(id) = candidate else { return Ok(None) };
    let claimed = diesel::update(jobs::table.find(&id).filter(runnable))
        .set((jobs::lease_owner.eq(owner), jobs::lease_until.eq(lease_until), jobs::attempts.eq(jobs::attempts + 1)))
        .execute(conn)?;
    if claimed == 0 {
        return Ok(None);
    }
    jobs::table.find(&id).select(Job::as_select()).get_result(conn).optional()
}

/// Extends the lease; `false` means another worker took the job over.
pub fn heartbeat(conn: &mut AnyConnection, id: &str, owner: &str, lease_until: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::lease_owner.eq(owner)))
        .set(jobs::lease_until.eq(lease_until))
        .execute(conn)?;
    Ok(n == 1)
}

/// Removes a finished job, only if `owner` still holds it.
pub fn complete(conn: &mut AnyConnection, id: &str, owner: &str) -> QueryResult<bool> {
    let n = diesel::delete(jobs::table.find(id).filter(jobs::lease_owner.eq(owner))).execute(conn)?;
    Ok(n == 1)
}

/// Releases the lease and schedules another attempt.
pub fn retry_later(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    run_at: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::lease_owner.eq(owner)))
        .set((
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::run_at.eq(run_at),
            jobs::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Locks a session's jobs of a kind until the transaction ends (PostgreSQL; SQLite's write
/// transaction holds the whole database already).
pub fn lock_for_session(conn: &mut AnyConnection, session_id: &str, kind: &str) -> QueryResult<()> {
    if let AnyConnection::Postgresql(pg) = conn {
        jobs::table
            .filter(jobs::session_id.eq(session_id))
            .filter(jobs::kind.eq(kind))
            .select(jobs::id)
            .for_update()
            .load::<String>(pg)?;
    }
    Ok(())
}

pub fn delete_for_session(conn: &mut AnyConnection, session_id: &str, kind: &str) -> QueryResult<usize> {
    diesel::delete(jobs::table.filter(jobs::session_id.eq(session_id)).filter(jobs::kind.eq(kind))).execute(conn)
}
