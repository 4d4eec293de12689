//! The session engine: the only place that changes a session. Every door (Leitwert REST,
//! hawkBit DDI, DMF), the pipeline jobs and the timers call it; none writes session rows
//! itself. A transition goes through `domain::session::transition` and is written as a
//! conditional update (`… WHERE state = <from>`), in one transaction with its side effects:
//! the event log, the job it enqueues, the notices for the doors (the outbox).

use chrono::NaiveDateTime;

use crate::db::session::{Session, SessionEvent, StateChange};
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::procedure::Timeouts;
use crate::domain::session::{Event, Outcome, State, due_timeouts, transition};
use crate::error::{Error, Result};
use crate::pipeline::steps::StepConfig;
use crate::service::Hub;
use crate::service::jobs::{self, Job};
use crate::service::outbox::{self, Notice};
use crate::time;

/// What transitions need to know about the job queue.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Queued pipeline jobs; a start beyond it fails with a queueing error.
    pub queue_limit: u64,
    /// Attempts a pipeline job gets before its session fails.
    pub pipeline_attempts: u32,
}

impl Limits {
    pub fn of(hub: &Hub) -> Limits {
        Limits { queue_limit: hub.settings.queue_limit, pipeline_attempts: hub.settings.job_max_attempts }
    }
}

/// The result of applying an event.
#[derive(Debug)]
pub enum Applied {
    Moved(Session),
    Repeated(Session),
    Expired,
    /// Another writer changed the session first; reload and decide again.
    Lost,
}

/// What else a transition writes, and why.
#[derive(Debug, Default)]
pub struct Details {
    pub message: Option<String>,
    pub change: StateChange,
    /// Doors to tell once the transition has committed.
    pub notices: Vec<Notice>,
}

impl Details {
    pub fn because(message: impl Into<String>) -> Details {
        Details { message: Some(message.into()), ..Details::default() }
    }
}

pub fn state_of(s: &Session) -> Result<State> {
    s.state.parse().map_err(|_| Error::internal(format!("session {} has unknown state {:?}", s.id, s.state)))
}

pub fn timeouts_of(s: &Session) -> Result<Timeouts> {
    serde_json::from_str(&s.timeouts).map_err(|e| Error::internal(format!("session {} timeouts: {e}", s.id)))
}

pub fn steps_of(s: &Session) -> Result<Vec<StepConfig>> {
    serde_json::from_str(&s.steps).map_err(|e| Error::internal(format!("session {} steps: {e}", s.id)))
}

/// Writes one entry of a session's history.
pub fn log_event(
    conn: &mut AnyConnection,
    session_id: &str,
    at: NaiveDateTime,
    kind: &str,
    from: Option<State>,
    to: Option<State>,
    message: Option<String>,
) -> Result<()> {
    db::session::add_event(
        conn,
        &SessionEvent {
            // v7: time-ordered, so events of the same microsecond keep their order
            id: uuid::Uuid::now_v7().to_string(),
            session_id: session_id.to_owned(),
            at,
            kind: kind.to_owned(),
            from_state: from.map(|s| s.as_str().to_owned()),
            to_state: to.map(|s| s.as_str().to_owned()),
            message,
            request_id: crate::telemetry::request_id::current().map(|id| id.to_string()),
        },
    )?;
    Ok(())
}

/// An event that changes no state (a device's message, a download).
pub fn note(conn: &mut AnyConnection, session_id: &str, kind: &str, message: impl Into<String>) -> Result<()> {
    log_event(conn, session_id, time::now(), kind, None, None, Some(message.into()))
}

/// Applies `event` at time `at` through the transition table, as a conditional update
/// with its side effects. Must run inside a write transaction.
pub fn apply(
    conn: &mut AnyConnection,
    limits: &Limits,
    s: &Session,
    event: Event,
    at: NaiveDateTime,
    details: Details,
) -> Result<Applied> {
    let from = state_of(s)?;
    let outcome = transition(from, event).map_err(|c| c.into_error())?;
    match outcome {
        Outcome::Repeat => Ok(Applied::Repeated(s.clone())),
        Outcome::Expire => {
            let change = StateChange { expired_at: Some(Some(at)), updated_at: Some(at), ..StateChange::default() };
            if !db::session::change_state_if(conn, &s.id, from.as_str(), &change)? {
                return Ok(Applied::Lost);
            }
            log_event(conn, &s.id, at, "expired", Some(from), None, details.message)?;
            record_notices(conn, details.notices, at)?;
            Ok(Applied::Expired)
        }
        Outcome::Move(to) => {
            let timeouts = timeouts_of(s)?;
            let mut change = details.change;
            change.state = Some(to.as_str().to_owned());
            change.expires_at = Some(to.expires_at(at, &timeouts));
            change.updated_at = Some(at);
            if to == State::Fail {
                change.fail_reason = Some(details.message.clone().or_else(|| Some("failed".into())));
            }
            if from == State::Queued && to == State::Fail {
                // Lock order: the job row before the session row, as a worker's claim
                // does, so a cancel racing a claim waits instead of deadlocking.
                jobs::lock_pipeline_job(conn, &s.id)?;
            }
            if !db::session::change_state_if(conn, &s.id, from.as_str(), &change)? {
                return Ok(Applied::Lost);
            }
            if from == State::Queued && to == State::Fail {
                jobs::drop_pipeline_job(conn, &s.id)?;
            }
            if to == State::Queued {
                jobs::enqueue(conn, &Job::Pipeline { session: s.id.clone() }, at, limits.pipeline_attempts)?;
            }
            log_event(conn, &s.id, at, "transition", Some(from), Some(to), details.message)?;
            record_notices(conn, details.notices, at)?;
            crate::service::dmf::on_transition(conn, s, to, at)?;
            // counted when written: a transaction the database aborts and the caller runs
            // again counts twice (rare: contention)
            let labels = crate::metrics::TransitionLabels { from: from.as_str(), to: to.as_str() };
            crate::metrics::get().transitions.get_or_create(&labels).inc();
            let moved = db::session::find(conn, &s.id)?.ok_or_else(|| Error::internal("session vanished"))?;
            // Every door's start (a device's /start, an admin's assignment) obeys the queue
            // limit: one that finds the queue full goes on to fail in the same transaction.
            if to == State::Queued
                && jobs::pipeline_backlog(conn)? > i64::try_from(limits.queue_limit).unwrap_or(i64::MAX)
            {
                let reason = Details::because("queueing error: the queue is full");
                return apply(conn, limits, &moved, Event::QueueError, at, reason);
            }
            Ok(Applied::Moved(moved))
        }
    }
}

fn record_notices(conn: &mut AnyConnection, notices: Vec<Notice>, at: NaiveDateTime) -> Result<()> {
    for notice in notices {
        outbox::record(conn, notice, at)?;
    }
    Ok(())
}

/// Fires every timer of `s` that is due by `now`. `None`: the session's life is over.
pub fn apply_due_timers(conn: &mut AnyConnection, mut s: Session, now: NaiveDateTime) -> Result<Option<Session>> {
    // The timers never enqueue, so the queue limits do not matter here.
    let limits = Limits { queue_limit: 0, pipeline_attempts: 1 };
    for _ in 0..8 {
        let timeouts = timeouts_of(&s)?;
        let Some(&(_, at)) = due_timeouts(state_of(&s)?, s.expires_at, now, &timeouts).first() else {
            return Ok(Some(s));
        };
        let message = match state_of(&s)? {
            State::Queued => {
                Some(format!("queueing error: no worker took the job within {} s", timeouts.queued.unwrap_or_default()))
            }
            State::Created => Some("the device did not confirm in time".to_owned()),
            _ => Some("timeout".to_owned()),
        };
        match apply(conn, &limits, &s, Event::Timeout, at, Details { message, ..Details::default() })? {
            Applied::Moved(next) => s = next,
            Applied::Expired => return Ok(None),
            Applied::Repeated(same) => return Ok(Some(same)),
            Applied::Lost => match db::session::find(conn, &s.id)? {
                Some(fresh) if fresh.expired_at.is_none() => s = fresh,
                _ => return Ok(None),
            },
        }
    }
    Ok(Some(s))
}

/// How many due sessions one sweep looks at.
const SWEEP_BATCH: i64 = 200;

/// Applies the timers of due sessions (for sessions nobody reads); returns how many it
/// looked at. Each session changes in its own transaction, so several instances sweeping at
/// once are harmless.
pub async fn sweep_due(hub: &Hub) -> Result<usize> {
    hub.db.run(|conn| sweep(conn, time::now(), SWEEP_BATCH)).await
}

fn sweep(conn: &mut AnyConnection, now: NaiveDateTime, batch: i64) -> Result<usize> {
    let due = db::session::due(conn, now, batch)?;
    let n = due.len();
    for s in due {
        let id = s.id.clone();
        if let Err(e) = write_transaction_retrying(conn, |conn| apply_due_timers(conn, s.clone(), now)) {
            tracing::warn!(session = %id, error = %e, "applying a session timer failed");
        }
    }
    Ok(n)
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("firmware-update session {id:?}"))
}

/// A session by id, expired or not (histories show both).
pub fn find_any(conn: &mut AnyConnection, id: &str) -> Result<Session> {
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| not_found(id))?.to_string();
    db::session::find(conn, &parsed)?.ok_or_else(|| not_found(id))
}

/// A live session by id with its creator's name, with due timers applied first (a read
/// never shows a state whose time has passed). Expired or unknown: 404.
pub fn load_live(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<(Session, String)> {
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| not_found(id))?.to_string();
    let (s, creator) = db::session::find_with_creator(conn, &parsed)?.ok_or_else(|| not_found(id))?;
    if s.expired_at.is_some() {
        return Err(not_found(id));
    }
    let s = apply_due_timers(conn, s, now)?.ok_or_else(|| not_found(id))?;
    Ok((s, creator))
}

/// [`load_live`] for readers: a plain read, and a write transaction only when a timer is
/// due (polls must not queue behind SQLite's single writer).
pub fn read_live(conn: &mut AnyConnection, id: &str) -> Result<(Session, String)> {
    let now = time::now();
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| not_found(id))?.to_string();
    let (s, creator) = db::session::find_with_creator(conn, &parsed)?.ok_or_else(|| not_found(id))?;
    if s.expired_at.is_some() {
        return Err(not_found(id));
    }
    if s.expires_at.is_some_and(|at| at <= now) {
        return write_transaction_retrying(conn, |conn| load_live(conn, id, now));
    }
    Ok((s, creator))
}

/// The same session again, as it is now (after a guarded transition was lost).
pub fn reload(conn: &mut AnyConnection, s: &Session) -> Result<Session> {
    db::session::find(conn, &s.id)?.ok_or_else(|| not_found(&s.id))
}

/// Loads a live session, lets `authorize` look at it, and applies `event`, deciding again
/// if another writer got there first (and retrying a transaction the database aborted for
/// a deadlock). Returns the session as it is afterwards, with its creator's name.
pub fn act(
    conn: &mut AnyConnection,
    limits: &Limits,
    id: &str,
    event: Event,
    authorize: impl Fn(&Session) -> Result<()>,
    details: impl Fn() -> Details,
) -> Result<(Session, String)> {
    for _ in 0..5 {
        let outcome = write_transaction_retrying(conn, |conn| {
            let now = time::now();
            let (s, creator) = load_live(conn, id, now)?;
            authorize(&s)?;
            Ok((apply(conn, limits, &s, event, now, details())?, creator))
        })?;
        match outcome {
            (Applied::Moved(s) | Applied::Repeated(s), creator) => return Ok((s, creator)),
            (Applied::Expired, _) => return Err(not_found(id)),
            (Applied::Lost, _) => continue,
        }
    }
    Err(Error::conflict("concurrent_update", "the session kept changing; try again"))
}

/// Asks the device to cancel an assigned session it may be working on (hawkBit cancel).
/// Returns whether this call asked (a repeated request changes nothing).
pub fn request_cancel(conn: &mut AnyConnection, s: &Session, at: NaiveDateTime, message: String) -> Result<bool> {
    if s.cancel_requested_at.is_some() {
        return Ok(false);
    }
    if !db::session::set_cancel_requested(conn, &s.id, Some(at))? {
        return Ok(false);
    }
    log_event(conn, &s.id, at, "cancel_requested", None, None, Some(message))?;
    crate::service::dmf::on_cancel_requested(conn, s, at)?;
    Ok(true)
}

/// The device refused to cancel: the update goes on.
pub fn withdraw_cancel(conn: &mut AnyConnection, s: &Session) -> Result<()> {
    db::session::set_cancel_requested(conn, &s.id, None)?;
    Ok(())
}

/// A cleared cancel request, for the transition that ends the session either way.
pub fn cleared_cancel() -> StateChange {
    StateChange { cancel_requested_at: Some(None), ..StateChange::default() }
}

/// The device consented to an assigned session (hawkBit confirmation).
pub fn record_consent(conn: &mut AnyConnection, s: &Session, at: NaiveDateTime) -> Result<()> {
    db::session::set_consented(conn, &s.id, at)?;
    Ok(())
}

/// What a new session is made of; see [`insert_session`].
pub struct NewSession<'a> {
    pub id: String,
    pub state: State,
    pub creator_id: String,
    pub product_id: String,
    pub model_id: String,
    pub channel_id: Option<String>,
    pub device_id: Option<String>,
    pub procedure: &'a db::delivery::DeliveryProcedure,
    /// Whether the device must confirm (assignments always do: the device reports `closed`).
    pub confirm: bool,
    /// The server's lifetimes; the procedure's own override them.
    pub defaults: Timeouts,
    pub current_firmware_id: Option<String>,
    pub current_version: Option<String>,
    pub target_firmware_id: Option<String>,
    pub assignment: Option<Assignment>,
    pub now: NaiveDateTime,
}

/// What makes a session a hawkBit action.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub action_type: crate::domain::ddi::ActionType,
    pub window: Option<(NaiveDateTime, NaiveDateTime)>,
    pub consent_required: bool,
}

/// Inserts a session with a fresh number, the procedure's steps and lifetimes frozen in.
pub fn insert_session(conn: &mut AnyConnection, n: NewSession<'_>) -> Result<Session> {
    let overrides: Timeouts =
        serde_json::from_str(&n.procedure.timeouts).map_err(|e| Error::internal(format!("procedure timeouts: {e}")))?;
    let mut timeouts = overrides.or(n.defaults);
    if let Some((_, end)) = n.assignment.as_ref().and_then(|a| a.window) {
        // the device may install only inside its window: the wait for its result starts
        // counting when the window closes, not when the deliverable is ready
        let until_closed = u64::try_from((end - n.now).num_seconds()).unwrap_or(0);
        timeouts.created = timeouts.created.map(|secs| secs.saturating_add(until_closed));
    }
    let row = Session {
        id: n.id,
        number: db::session::next_number(conn)?,
        state: n.state.as_str().to_owned(),
        creator_id: n.creator_id,
        product_id: n.product_id,
        model_id: n.model_id,
        channel_id: n.channel_id,
        device_id: n.device_id,
        procedure_id: n.procedure.id.clone(),
        current_firmware_id: n.current_firmware_id,
        current_version: n.current_version,
        target_firmware_id: n.target_firmware_id,
        steps: n.procedure.steps.clone(),
        confirm: n.confirm,
        timeouts: serde_json::to_string(&timeouts).map_err(|e| Error::internal(e.to_string()))?,
        payload: None,
        artifact_key: None,
        artifact_sha256: None,
        fail_reason: None,
        expires_at: n.state.expires_at(n.now, &timeouts),
        expired_at: None,
        created_at: n.now,
        updated_at: n.now,
        action_type: n.assignment.as_ref().map(|a| a.action_type.as_str().to_owned()),
        maintenance_start: n.assignment.as_ref().and_then(|a| a.window.map(|w| w.0)),
        maintenance_end: n.assignment.as_ref().and_then(|a| a.window.map(|w| w.1)),
        cancel_requested_at: None,
        consent_required: n.assignment.as_ref().is_some_and(|a| a.consent_required),
        consented_at: None,
        bytes_served: 0,
    };
    db::session::insert(conn, &row)?;
    Ok(row)
}
