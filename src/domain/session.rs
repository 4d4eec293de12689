//! The firmware-update session state machine (seed 003, `design.md` "Session state
//! machine"). [`transition`] is the only place that decides what a state may become; every
//! door (Leitwert REST, hawkBit DDI, DMF), the workers and the timers go through it, and the
//! database applies its answer as a conditional update (`… WHERE state = <from>`).

use std::fmt;
use std::str::FromStr;

use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::procedure::Timeouts;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    UpToDate,
    Ready,
    Queued,
    Processing,
    Created,
    Unconfirmed,
    Success,
    Fail,
}

/// What can happen to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `POST /{id}/start`.
    Start,
    /// A worker claimed the pipeline job.
    Claim,
    /// The queue refused the job (full) or it waited too long.
    QueueError,
    /// The pipeline produced the deliverable; `confirm`: the procedure has a confirm step.
    PipelineDone { confirm: bool },
    /// A step failed for good (or the attempts are exhausted).
    PipelineFailed,
    /// `POST /{id}/confirm {"success": …}`.
    Confirm { success: bool },
    /// The state's expiration time passed.
    Timeout,
    /// The assignment is withdrawn (hawkBit cancel): before the device saw it, or after
    /// the device confirmed the cancel. design.md's hawkBit mapping: → `fail`, "canceled".
    Cancel,
    /// The stored bytes the session relies on (its firmware image, or its deliverable) no
    /// longer match their digests: the integrity scrub quarantined them. → `fail`.
    Corrupted,
}

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Move to this state.
    Move(State),
    /// A safe repeat (a retried `/start` or `/confirm`): nothing changes, answer the session.
    Repeat,
    /// The session's life is over: it answers 404 from now on and stays in the history.
    Expire,
}

/// An event the current state does not accept (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    pub state: State,
    pub event: Event,
}

impl State {
    pub const ALL: [State; 8] = [
        State::UpToDate,
        State::Ready,
        State::Queued,
        State::Processing,
        State::Created,
        State::Unconfirmed,
        State::Success,
        State::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up_to_date",
            State::Ready => "ready",
            State::Queued => "queued",
            State::Processing => "processing",
            State::Created => "created",
            State::Unconfirmed => "unconfirmed",
            State::Success => "success",
            State::Fail => "fail",
        }
    }

    /// Finished sessions will not change any more (only expire).
    pub fn is_finished(self) -> bool {
        matches!(self, State::UpToDate | State::Success | State::Fail | State::Unconfirmed)
    }

    /// Whether the deliverable exists (the payload has a download link).
    pub fn has_deliverable(self) -> bool {
        matches!(self, State::Created | State::Success)
    }

    /// How long a session stays in this state before its timer fires. `processing` has no
    /// timer: it is bounded by the job's attempts and per-attempt time limit instead.
    pub fn timeout(self, t: &Timeouts) -> Option<Duration> {
        let secs = match self {
            State::UpToDate => t.up_to_date,
            State::Ready => t.ready,
            State::Queued => t.queued,
            State::Processing => None,
            State::Created => t.created,
            State::Unconfirmed => t.unconfirmed,
            State::Success => t.success,
            State::Fail => t.fail,
        }?;
        Some(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000)))
    }

    /// The expiration time of a state entered at `entered`.
    pub fn expires_at(self, entered: NaiveDateTime, t: &Timeouts) -> Option<NaiveDateTime> {
        self.timeout(t).map(|d| entered + d)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("state: {s:?} is not a session state")))
    }
}

/// The whole transition table, and nothing more.
pub fn transition(state: State, event: Event) -> Result<Outcome, Conflict> {
    use Event as E;
    use Outcome::{Expire, Move, Repeat};
    use State as S;
    let outcome = match (state, event) {
        (S::Ready, E::Start) => Move(S::Queued),
        // A retried /start after the session moved on is harmless.
        (S::Queued | S::Processing | S::Created | S::Success, E::Start) => Repeat,

        (S::Queued, E::Claim) => Move(S::Processing),
        (S::Queued, E::QueueError | E::Timeout) => Move(S::Fail),

        (S::Processing, E::PipelineDone { confirm: true }) => Move(S::Created),
        (S::Processing, E::PipelineDone { confirm: false }) => Move(S::Success),
        (S::Processing, E::PipelineFailed) => Move(S::Fail),

        (S::Created, E::Confirm { success: true }) => Move(S::Success),
        (S::Created, E::Confirm { success: false }) => Move(S::Fail),
        // The same confirm again answers the current session.
        (S::Success, E::Confirm { success: true }) | (S::Fail, E::Confirm { success: false }) => Repeat,
        (S::Created, E::Timeout) => Move(S::Unconfirmed),

        (S::Ready | S::UpToDate | S::Success | S::Fail | S::Unconfirmed, E::Timeout) => Expire,

        (S::Queued | S::Processing | S::Created, E::Cancel) => Move(S::Fail),
        (S::Queued | S::Processing | S::Created, E::Corrupted) => Move(S::Fail),

        _ => return Err(Conflict { state, event }),
    };
    Ok(outcome)
}

impl Conflict {
    pub fn into_error(self) -> Error {
        let what = match self.event {
            Event::Start => "cannot be started",
            Event::Confirm { .. } => "cannot be confirmed",
            Event::Claim => "cannot be claimed by a worker",
            Event::QueueError | Event::PipelineDone { .. } | Event::PipelineFailed => "is not in the pipeline",
            Event::Timeout => "has no timer",
            Event::Cancel => "cannot be canceled",
            Event::Corrupted => "does not rely on stored bytes",
        };
        Error::conflict("session_state", format!("the session is in state {} and {what}", self.state))
            .with_extra("state", self.state.as_str())
    }
}

/// Where a session's timers lead by `now`: every timeout that has passed fires in order
/// (a session that sat in `created` through its whole `unconfirmed` time has expired).
/// Returns the steps as (new state or `None` for expired, time the state was entered).
pub fn due_timeouts(
    mut state: State,
    mut expires_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
    t: &Timeouts,
) -> Vec<(Option<State>, NaiveDateTime)> {
    let mut steps = Vec::new();
    while let Some(at) = expires_at.filter(|at| *at <= now) {
        match transition(state, Event::Timeout) {
            Ok(Outcome::Move(next)) => {
                steps.push((Some(next), at));
                state = next;
                expires_at = next.expires_at(at, t);
            }
            Ok(Outcome::Expire) => {
                steps.push((None, at));
                break;
            }
            Ok(Outcome::Repeat) | Err(_) => break,
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use Outcome::{Expire, Move, Repeat};
    use State as S;

    fn events() -> Vec<Event> {
        vec![
            E::Start,
            E::Claim,
            E::QueueError,
            E::PipelineDone { confirm: true },
            E::PipelineDone { confirm: false },
            E::PipelineFailed,
            E::Confirm { success: true },
            E::Confirm { success: false },
            E::Timeout,
            E::Cancel,
            E::Corrupted,
        ]
    }

    /// design.md's table, row by row (plus the cancel of its hawkBit mapping); every other
    /// (state, event) pair is a conflict.
    #[test]
    fn the_whole_table_and_nothing_more() {
        let table: Vec<(State, Event, Outcome)> = vec![
            (S::Ready, E::Start, Move(S::Queued)),
            (S::Queued, E::Claim, Move(S::Processing)),
            (S::Queued, E::QueueError, Move(S::Fail)),
            (S::Queued, E::Timeout, Move(S::Fail)),
            (S::Processing, E::PipelineDone { confirm: true }, Move(S::Created)),
            (S::Processing, E::PipelineDone { confirm: false }, Move(S::Success)),
            (S::Processing, E::PipelineFailed, Move(S::Fail)),
            (S::Created, E::Confirm { success: true }, Move(S::Success)),
            (S::Created, E::Confirm { success: false }, Move(S::Fail)),
            (S::Created, E::Timeout, Move(S::Unconfirmed)),
            (S::Ready, E::Timeout, Expire),
            (S::UpToDate, E::Timeout, Expire),
            (S::Success, E::Timeout, Expire),
            (S::Fail, E::Timeout, Expire),
            (S::Unconfirmed, E::Timeout, Expire),
            // hawkBit cancel (design.md's mapping)
            (S::Queued, E::Cancel, Move(S::Fail)),
            (S::Processing, E::Cancel, Move(S::Fail)),
            (S::Created, E::Cancel, Move(S::Fail)),
            // the integrity scrub quarantined what the session relies on
            (S::Queued, E::Corrupted, Move(S::Fail)),
            (S::Processing, E::Corrupted, Move(S::Fail)),
            (S::Created, E::Corrupted, Move(S::Fail)),
            // safe repeats
            (S::Queued, E::Start, Repeat),
            (S::Processing, E::Start, Repeat),
            (S::Created, E::Start, Repeat),
            (S::Success, E::Start, Repeat),
            (S::Success, E::Confirm { success: true }, Repeat),
            (S::Fail, E::Confirm { success: false }, Repeat),
        ];
        for state in S::ALL {
            for event in events() {
                let expected = table.iter().find(|(s, e, _)| *s == state && *e == event).map(|(_, _, o)| *o);
                match (transition(state, event), expected) {
                    (Ok(got), Some(want)) => assert_eq!(got, want, "{state} + {event:?}"),
                    (Err(c), None) => assert_eq!(c, Conflict { state, event }),
                    (got, want) => panic!("{state} + {event:?}: got {got:?}, table says {want:?}"),
                }
            }
        }
    }

    #[test]
    fn finished_states_never_move_except_to_expire() {
        for state in S::ALL.into_iter().filter(|s| s.is_finished()) {
            for event in events() {
                if let Ok(Move(next)) = transition(state, event) {
                    panic!("finished {state} moved to {next} on {event:?}");
                }
            }
        }
    }

    #[test]
    fn every_state_but_processing_has_a_timer() {
        let t = Timeouts::server_defaults();
        for state in S::ALL {
            assert_eq!(state.timeout(&t).is_some(), state != S::Processing, "{state}");
        }
        assert_eq!(S::Ready.timeout(&t), Some(Duration::minutes(15)), "seed 003: ready lives 15 minutes");
    }

    #[test]
    fn overdue_timers_fire_in_order() {
        let t = Timeouts { created: Some(10), unconfirmed: Some(10), ..Timeouts::server_defaults() };
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).map(|d| d.naive_utc()).unwrap_or_default();
        let exp = S::Created.expires_at(t0, &t);
        assert!(due_timeouts(S::Created, exp, t0 + Duration::seconds(9), &t).is_empty());
        let one = due_timeouts(S::Created, exp, t0 + Duration::seconds(15), &t);
        assert_eq!(one, vec![(Some(S::Unconfirmed), t0 + Duration::seconds(10))]);
        let two = due_timeouts(S::Created, exp, t0 + Duration::seconds(25), &t);
        assert_eq!(two, vec![(Some(S::Unconfirmed), t0 + Duration::seconds(10)), (None, t0 + Duration::seconds(20))]);
        assert!(due_timeouts(S::Processing, None, t0 + Duration::days(9), &t).is_empty());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::domain::procedure::MAX_TIMEOUT_SECS;

        fn state() -> impl Strategy<Value = State> {
            prop::sample::select(State::ALL.to_vec())
        }

        fn event() -> impl Strategy<Value = Event> {
            prop_oneof![
                Just(Event::Start),
                Just(Event::Claim),
                Just(Event::QueueError),
                any::<bool>().prop_map(|confirm| Event::PipelineDone { confirm }),
                Just(Event::PipelineFailed),
                any::<bool>().prop_map(|success| Event::Confirm { success }),
                Just(Event::Timeout),
                Just(Event::Cancel),
                Just(Event::Corrupted),
            ]
        }

        /// Lifetimes as a procedure may set them (each 1 s to 30 days, or the default).
        fn timeouts() -> impl Strategy<Value = Timeouts> {
            let secs = prop::option::of(1..=MAX_TIMEOUT_SECS);
            ((secs.clone(), secs.clone(), secs.clone(), secs.clone()), (secs.clone(), secs.clone(), secs.clone(), secs))
                .prop_map(|((up_to_date, ready, queued, processing), (created, success, fail, unconfirmed))| {
                    Timeouts { up_to_date, ready, queued, processing, created, success, fail, unconfirmed }
                        .or(Timeouts::server_defaults())
                })
        }

        proptest! {
            /// One step: finished states never move (only expire or repeat), a repeat is only
            /// ever a retried start or confirm and stays one, expiry comes only from a timer,
            /// and every state a session moves to has a timer or is `processing`.
            #[test]
            fn one_transition(from in state(), e in event(), t in timeouts()) {
                match transition(from, e) {
                    Ok(Outcome::Move(to)) => {
                        prop_assert!(!from.is_finished(), "finished {from} moved to {to} on {e:?}");
                        prop_assert!(to != from, "{from} moved to itself on {e:?}");
                        prop_assert!(to.timeout(&t).is_some() || to == State::Processing, "{to} has no timer");
                    }
                    Ok(Outcome::Repeat) => {
                        prop_assert!(matches!(e, Event::Start | Event::Confirm { .. }), "{from} repeated {e:?}");
                        prop_assert_eq!(transition(from, e), Ok(Outcome::Repeat));
                    }
                    Ok(Outcome::Expire) => {
                        prop_assert_eq!(e, Event::Timeout);
                        prop_assert!(from.timeout(&t).is_some(), "{from} expired without a timer");
                    }
                    Err(c) => prop_assert_eq!(c, Conflict { state: from, event: e }),
                }
            }

            /// Whatever happens to a session: it is never unfinished again once finished,
            /// and nothing follows its expiry.
            #[test]
            fn any_history(start in prop_oneof![Just(State::Ready), Just(State::UpToDate), state()], events in prop::collection::vec(event(), 0..40)) {
                let mut current = start;
                for e in events {
                    match transition(current, e) {
                        Ok(Outcome::Move(next)) => {
                            prop_assert!(!current.is_finished());
                            current = next;
                        }
                        Ok(Outcome::Repeat) | Err(_) => {}
                        Ok(Outcome::Expire) => break,
                    }
                }
            }

            /// Overdue timers fire in order, never later than now, a few at most.
            #[test]
            fn timers_catch_up(from in state(), t in timeouts(), entered in 0i64..4_000_000_000, late in 0i64..200_000_000) {
                let entered = chrono::DateTime::from_timestamp(entered, 0).map(|d| d.naive_utc()).unwrap_or_default();
                let now = entered + Duration::seconds(late);
                let steps = due_timeouts(from, from.expires_at(entered, &t), now, &t);
                prop_assert!(steps.len() <= 2, "{steps:?}");
                let mut at = entered;
                let mut state = from;
                for (next, when) in &steps {
                    prop_assert!(*when >= at && *when <= now);
                    match (transition(state, Event::Timeout), next) {
                        (Ok(Outcome::Move(to)), Some(n)) => { prop_assert_eq!(to, *n); state = to; }
                        (Ok(Outcome::Expire), None) => {}
                        (got, n) => prop_assert!(false, "{state}: timer step to {n:?}, table says {got:?}"),
                    }
                    at = *when;
                }
            }
        }
    }
}
