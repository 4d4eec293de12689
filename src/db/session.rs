//! Sessions and their events. A state change is always conditional on the state the
//! caller saw (`… WHERE id = ? AND state = ?`), so a retried request or a second instance
//! can never apply one transition twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{counters, session_events, sessions, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub number: i64,
    pub state: String,
    pub creator_id: String,
    pub product_id: String,
    pub model_id: String,
    pub channel_id: Option<String>,
    pub device_id: Option<String>,
    pub procedure_id: String,
    pub current_firmware_id: Option<String>,
    pub current_version: Option<String>,
    pub target_firmware_id: Option<String>,
    pub steps: String,
    pub confirm: bool,
    pub timeouts: String,
    pub payload: Option<String>,
    pub artifact_key: Option<String>,
    pub artifact_sha256: Option<String>,
    pub fail_reason: Option<String>,
    pub expires_at: Option<NaiveDateTime>,
    pub expired_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Set for sessions an admin assigned (hawkBit actions): `forced`, `soft`, `download_only`.
    pub action_type: Option<String>,
    pub maintenance_start: Option<NaiveDateTime>,
    pub maintenance_end: Option<NaiveDateTime>,
    /// An admin asked the device to cancel; it has not confirmed yet.
    pub cancel_requested_at: Option<NaiveDateTime>,
    /// The device must consent before it is offered the update (hawkBit confirmation flow).
    pub consent_required: bool,
    pub consented_at: Option<NaiveDateTime>,
    /// Bytes of the deliverable served so far, whole downloads and ranges (migration 000008).
    pub bytes_served: i64,
}

/// What a transition writes besides the state.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = sessions)]
pub struct StateChange {
    pub state: Option<String>,
    pub expires_at: Option<Option<NaiveDateTime>>,
    pub expired_at: Option<Option<NaiveDateTime>>,
    pub payload: Option<Option<String>>,
    pub artifact_key: Option<Option<String>>,
    pub artifact_sha256: Option<Option<String>>,
    pub fail_reason: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
    pub cancel_requested_at: Option<Option<NaiveDateTime>>,
    pub consented_at: Option<Option<NaiveDateTime>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_events)]
pub struct SessionEvent {
    pub id: String,
    pub session_id: String,
    pub at: NaiveDateTime,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: Option<String>,
    /// The HTTP request that wrote it (`X-Request-Id`); none for jobs and timers.
    pub request_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub device: Option<String>,
    pub model: Option<String>,
    pub product: Option<String>,
    /// Sessions that deliver this firmware (an assignment's progress).
    pub target_firmware: Option<String>,
    pub products: Option<Vec<String>>,
    /// `Some(false)`: only sessions still alive; `Some(true)`: only expired; `None`: all.
    pub expired: Option<bool>,
}

/// The next short number (hawkBit action ids are numbers < 2^31). The counter row is
/// locked by the update on PostgreSQL and by the write transaction on SQLite.
pub fn next_number(conn: &mut AnyConnection) -> QueryResult<i64> {
    diesel::update(counters::table.find("session"))
        .set(counters::value.eq(counters::value + 1))
        .returning(counters::value)
        .get_result(conn)
}

pub fn insert(conn: &mut AnyConnection, row: &Session) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(row).execute(conn).map(drop)
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Session>> {
    sessions::table.find(id).select(Session::as_select()).get_result(conn).optional()
}

/// With the creator's user name.
pub fn find_with_creator(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<(Session, String)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id))
        .select((Session::as_select(), users::username))
        .get_result(conn)
        .optional()
}

/// Applies `change` only if the session is still in `from` (and not expired). Returns
/// whether it did.
pub fn change_state_if(conn: &mut AnyConnection, id: &str, from: &str, change: &StateChange) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table.find(id).filter(sessions::state.eq(from)).filter(sessions::expired_at.is_null()),
    )
    .set(change)
    .execute(conn)?;
    Ok(n == 1)
}

/// Live sessions whose timer is due, oldest first.
pub fn due(conn: &mut AnyConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::expired_at.is_null())
        .filter(sessions::expires_at.le(now))
        .order(sessions::expires_at)
        .limit(limit)
        .select(Session::as_select())
        .load(conn)
}

pub fn list(
    conn: &mut AnyConnection,
    filter: &Filter,
    page: super::Page,
) -> QueryResult<(Vec<(Session, String)>, i64)> {
    let query = || {
        let mut q = sessions::table.inner_join(users::table).into_boxed();
        if let Some(s) = &filter.state {
            q = q.filter(sessions::state.eq(s.clone()));
        }
        if let Some(d) = &filter.device {
            q = q.filter(sessions::device_id.eq(d.clone()));
        }
        if let Some(m) = &filter.model {
            q = q.filter(sessions::model_id.eq(m.clone()));
        }
        if let Some(p) = &filter.product {
            q = q.filter(sessions::product_id.eq(p.clone()));
        }
        if let Some(f) = &filter.target_firmware {
            q = q.filter(sessions::target_firmware_id.eq(f.clone()));
        }
        if let Some(ids) = &filter.products {
            q = q.filter(sessions::product_id.eq_any(ids.clone()));
        }
        match filter.expired {
            Some(true) => q = q.filter(sessions::expired_at.is_not_null()),
            Some(false) => q = q.filter(sessions::expired_at.is_null()),
            None => {}
        }
        q
    };
    let order = (sessions::created_at.desc(), sessions::id);
    crate::db::page_of!(conn, query(), order, (Session::as_select(), users::username), page)
}

pub fn add_event(conn: &mut AnyConnection, event: &SessionEvent) -> QueryResult<()> {
    diesel::insert_into(session_events::table).values(event).execute(conn).map(drop)
}

pub fn events(conn: &mut AnyConnection, session_id: &str, limit: i64) -> QueryResult<Vec<SessionEvent>> {
    session_events::table
        .filter(session_events::session_id.eq(session_id))
        .order((session_events::at.desc(), session_events::id.desc()))
        .limit(limit)
        .select(SessionEvent::as_select())
        .load(conn)
}

/// A session by its short number within a product (hawkBit action ids), expired or not.
pub fn find_by_number(conn: &mut AnyConnection, product_id: &str, number: i64) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::number.eq(number))
        .filter(sessions::product_id.eq(product_id))
        .select(Session::as_select())
        .get_result(conn)
        .optional()
}

/// A device's live assigned sessions that are not finished, oldest first: the first is the
/// action the device works on (hawkBit's single "current" action).
pub fn open_assignments(conn: &mut AnyConnection, device_id: &str) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::device_id.eq(device_id))
        .filter(sessions::expired_at.is_null())
        .filter(sessions::action_type.is_not_null())
        // not `eq_any`: diesel never caches an `IN (…)` statement, and every DDI poll runs this
        .filter(sessions::state.eq("queued").or(sessions::state.eq("processing")).or(sessions::state.eq("created")))
        .order((sessions::created_at, sessions::number))
        .select(Session::as_select())
        .load(conn)
}

/// Live (not expired) sessions by state and action type (none: a device asked), for
/// `/metrics`: one grouped scan.
pub fn count_by_state(conn: &mut AnyConnection) -> QueryResult<Vec<(String, Option<String>, i64)>> {
    sessions::table
        .filter(sessions::expired_at.is_null())
        .group_by((sessions::state, sessions::action_type))
        .select((sessions::state, sessions::action_type, diesel::dsl::count_star()))
        .load(conn)
}

/// Adds to a session's bytes served and returns the new total.
pub fn add_bytes_served(conn: &mut AnyConnection, session_id: &str, bytes: i64) -> QueryResult<i64> {
    add_bytes(conn, session_id, bytes)?;
    sessions::table.find(session_id).select(sessions::bytes_served).get_result(conn)
}

/// Adds to a session's bytes served; `false` when the session is gone.
pub fn add_bytes(conn: &mut AnyConnection, session_id: &str, bytes: i64) -> QueryResult<bool> {
    let n = diesel::update(sessions::table.find(session_id))
        .set(sessions::bytes_served.eq(sessions::bytes_served + bytes))
        .execute(conn)?;
    Ok(n == 1)
}

/// How many history rows a session has (hawkBit caps intermediate feedback).
pub fn count_events(conn: &mut AnyConnection, session_id: &str) -> QueryResult<i64> {
    session_events::table.filter(session_events::session_id.eq(session_id)).count().get_result(conn)
}

/// Sets or clears the pending-cancel mark of a live session.
pub fn set_cancel_requested(conn: &mut AnyConnection, id: &str, at: Option<NaiveDateTime>) -> QueryResult<bool> {
    let n = diesel::update(sessions::table.find(id).filter(sessions::expired_at.is_null()))
        .set(sessions::cancel_requested_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records the device's consent.
pub fn set_consented(conn: &mut AnyConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(sessions::table.find(id).filter(sessions::consented_at.is_null()))
        .set(sessions::consented_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Every object key a live session holds as its deliverable (an expired session answers 404
/// and never serves it again).
pub fn artifact_keys(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    sessions::table
        .filter(sessions::artifact_key.is_not_null())
        .filter(sessions::expired_at.is_null())
        .select(sessions::artifact_key.assume_not_null())
        .distinct()
        .load(conn)
}

/// What a session may rely on in the object store.
#[derive(Debug, Clone, Copy)]
pub enum Relying<'a> {
    /// Its deliverable is stored in this object.
    OnDeliverable(&'a str),
    /// It updates to this firmware (whose image it is prepared from).
    OnTarget(&'a str),
}

/// Live sessions in one of `states` that rely on an object.
pub fn live_relying(conn: &mut AnyConnection, relying: Relying<'_>, states: &[&str]) -> QueryResult<Vec<Session>> {
    let live = sessions::table
        .filter(sessions::expired_at.is_null())
        .filter(sessions::state.eq_any(states.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()))
        .into_boxed();
    let relying = match relying {
        Relying::OnDeliverable(key) => live.filter(sessions::artifact_key.eq(key.to_owned())),
        Relying::OnTarget(firmware_id) => live.filter(sessions::target_firmware_id.eq(firmware_id.to_owned())),
    };
    relying.select(Session::as_select()).load(conn)
}
