//! What the admin web UI keeps: passwords, signed-in browser sessions, failed sign-ins.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{sign_in_failures, user_passwords, users, web_sessions};
use super::user::User;

// ---- passwords -------------------------------------------------------------------------

/// The password hash of a user, if they have one.
pub fn password_of(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Option<String>> {
    user_passwords::table.find(user_id).select(user_passwords::hash).get_result(conn).optional()
}

/// An active user by name, with their password hash (if any).
pub fn active_user_with_password(
    conn: &mut AnyConnection,
    username: &str,
) -> QueryResult<Option<(User, Option<String>)>> {
    users::table
        .left_join(user_passwords::table)
        .filter(users::username.eq(username))
        .filter(users::active.eq(true))
        .select((User::as_select(), user_passwords::hash.nullable()))
        .get_result(conn)
        .optional()
}

/// Sets (or replaces) a user's password hash.
pub fn set_password(conn: &mut AnyConnection, user_id: &str, hash: &str, now: NaiveDateTime) -> QueryResult<()> {
    let changed = diesel::update(user_passwords::table.find(user_id))
        .set((user_passwords::hash.eq(hash), user_passwords::updated_at.eq(now)))
        .execute(conn)?;
    if changed == 0 {
        diesel::insert_into(user_passwords::table)
            .values((
                user_passwords::user_id.eq(user_id),
                user_passwords::hash.eq(hash),
                user_passwords::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

// ---- browser sessions ------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = web_sessions)]
pub struct WebSession {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

crate::db::row_writes!(web_sessions, WebSession);

/// The live session with this token hash and its (active) user: not past its absolute end,
/// seen since `idle_since`.
pub fn find_live_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: NaiveDateTime,
    idle_since: NaiveDateTime,
) -> QueryResult<Option<(WebSession, User)>> {
    web_sessions::table
        .inner_join(users::table)
        .filter(web_sessions::token_hash.eq(token_hash))
        .filter(web_sessions::expires_at.gt(now))
        .filter(web_sessions::last_seen_at.gt(idle_since))
        .filter(users::active.eq(true))
        .select((WebSession::as_select(), User::as_select()))
        .get_result(conn)
        .optional()
}

pub fn touch_session(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(web_sessions::table.find(id)).set(web_sessions::last_seen_at.eq(now)).execute(conn).map(drop)
}

pub fn delete_session_by_hash(conn: &mut AnyConnection, token_hash: &str) -> QueryResult<usize> {
    diesel::delete(web_sessions::table.filter(web_sessions::token_hash.eq(token_hash))).execute(conn)
}

/// Ends every session of a user (their password changed).
pub fn delete_sessions_of(conn: &mut AnyConnection, user_id: &str, except: Option<&str>) -> QueryResult<usize> {
    let mut q = diesel::delete(web_sessions::table).filter(web_sessions::user_id.eq(user_id)).into_boxed();
    if let Some(keep) = except {
        q = q.filter(web_sessions::id.ne(keep.to_owned()));
    }
    q.execute(conn)
}

/// Removes sessions idle since `idle_since` or past their end (housekeeping at sign-in).
pub fn delete_dead_sessions(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    idle_since: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        web_sessions::table.filter(web_sessions::expires_at.le(now).or(web_sessions::last_seen_at.le(idle_since))),
    )
    .execute(conn)
}

// ---- failed sign-ins -------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sign_in_failures)]
#[diesel(treat_none_as_null = true)]
pub struct SignInFailures {
    pub subject: String,
    pub failures: i32,
    pub last_failure_at: NaiveDateTime,
    pub blocked_until: Option<NaiveDateTime>,
}

pub fn failures_of(conn: &mut AnyConnection, subjects: &[String]) -> QueryResult<Vec<SignInFailures>> {
    sign_in_failures::table
        .filter(sign_in_failures::subject.eq_any(subjects))
        .select(SignInFailures::as_select())
        .load(conn)
}

/// Writes a subject's counter (insert or replace).
pub fn put_failures(conn: &mut AnyConnection, row: &SignInFailures) -> QueryResult<()> {
    let update =
        |conn: &mut AnyConnection| diesel::update(sign_in_failures::table.find(&row.subject)).set(row).execute(conn);
    if update(conn)? == 0 {
        match diesel::insert_into(sign_in_failures::table).values(row).execute(conn) {
            // another instance counted the same subject's first failure at once: count on theirs
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
                update(conn)?;
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

pub fn clear_failures(conn: &mut AnyConnection, subject: &str) -> QueryResult<()> {
    diesel::delete(sign_in_failures::table.find(subject)).execute(conn).map(drop)
}
