//! Assignments that run as a job (`service::assignments`): what to assign, to which devices,
//! and how far the job got. `done` only moves on in the transaction that assigned those
//! devices, and only from the value the job read, so each device is assigned once even when
//! a second worker takes a job over.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::assignments;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = assignments)]
pub struct Assignment {
    pub id: String,
    pub firmware_id: String,
    pub product_id: String,
    pub creator_id: String,
    pub plan: String,
    pub devices: String,
    pub total: i32,
    pub done: i32,
    pub assigned: i32,
    pub skipped: String,
    pub state: String,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// What one chunk moved on.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = assignments)]
pub struct Progress {
    pub done: i32,
    pub assigned: i32,
    pub skipped: String,
    pub state: String,
    pub error: Option<String>,
    pub finished_at: Option<NaiveDateTime>,
}

super::row_writes!(assignments, Assignment);

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Assignment>> {
    assignments::table.find(id).select(Assignment::as_select()).get_result(conn).optional()
}

/// Records a chunk's progress if the assignment is still running at `from` devices done;
/// `false`: someone else moved it on.
pub fn advance(conn: &mut AnyConnection, id: &str, from: i32, progress: &Progress) -> QueryResult<bool> {
    let row = assignments::table.find(id).filter(assignments::done.eq(from)).filter(assignments::state.eq("running"));
    Ok(diesel::update(row).set(progress).execute(conn)? == 1)
}
