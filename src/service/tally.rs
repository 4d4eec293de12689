//! Bytes served by range requests, counted in memory and written in batches.
//!
//! A streaming client fetches an image in thousands of ranges, and each answer adds to its
//! session's `bytes_served`. Written one by one, that is a write transaction per range: on
//! SQLite (one writer at a time) the ranges of every device queued behind each other for
//! it. So only a session's first range in this process is written at once (it may be the
//! session's first at all, which notes DOWNLOAD_STARTED in the history, `action::note_download`);
//! later ranges are added here and written every [`FLUSH_EVERY`], and when the server stops.
//! A reader adds what this process has not written yet ([`Tally::pending`]) to the row, so
//! it is behind by at most the batch being written at that moment; another instance sees
//! the row up to [`FLUSH_EVERY`] late. A `kill -9` loses the counting not written yet (a
//! second's worth while the database takes writes; more if it has been refusing them),
//! never a byte of a download or a history event.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Hub;
use crate::error::Result;

/// How often counted bytes are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A session that served no range for this long is forgotten (its next range is written at once).
const IDLE: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct Tally {
    sessions: Mutex<HashMap<String, Counting>>,
    /// Held by a flush from taking the counts until they are written or put back, so the
    /// last flush at shutdown waits for one under way.
    flushing: tokio::sync::Mutex<()>,
}

struct Counting {
    /// Bytes not written yet.
    unwritten: u64,
    last_range: Instant,
}

impl Tally {
    /// Counts a range of a session whose counting this process already wrote once; `false`
    /// when it has not (the caller writes this range itself, then calls [`Tally::written`]).
    pub fn add(&self, session_id: &str, bytes: u64) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get_mut(session_id) {
            Some(c) => {
                c.unwritten = c.unwritten.saturating_add(bytes);
                c.last_range = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Marks a session's counting as written once by this process.
    pub fn written(&self, session_id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.entry(session_id.to_owned()).or_insert(Counting { unwritten: 0, last_range: Instant::now() });
    }

    /// Bytes of a session counted here and not written yet.
    pub fn pending(&self, session_id: &str) -> u64 {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(session_id).map_or(0, |c| c.unwritten)
    }

    /// Takes what is to be written (in session order, so two instances' batches lock rows in
    /// the same order), and forgets idle sessions.
    fn take(&self) -> Vec<(String, u64)> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due: Vec<(String, u64)> = sessions
            .iter_mut()
            .filter(|(_, c)| c.unwritten > 0)
            .map(|(id, c)| (id.clone(), std::mem::take(&mut c.unwritten)))
            .collect();
        sessions.retain(|_, c| c.last_range.elapsed() < IDLE);
        due.sort_unstable();
        due
    }

    /// Puts back what could not be written, to be tried again.
    fn restore(&self, due: Vec<(String, u64)>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, bytes) in due {
            let c = sessions.entry(id).or_insert(Counting { unwritten: 0, last_range: Instant::now() });
            c.unwritten = c.unwritten.saturating_add(bytes);
        }
    }
}

/// Writes what [`Tally`] counted, in one transaction.
pub async fn flush(hub: &Hub) -> Result<()> {
    let _turn = hub.tally.flushing.lock().await;
    let due = hub.tally.take();
    if due.is_empty() {
        return Ok(());
    }
    let rows = due.clone();
    let written = hub
        .db
        .run(move |conn| {
            crate::db::bookkeeping_transaction_retrying(conn, |conn| {
                for (session_id, bytes) in &rows {
                    // a session deleted meanwhile just drops its count
                    crate::db::session::add_bytes(conn, session_id, i64::try_from(*bytes).unwrap_or(i64::MAX))?;
                }
                Ok(())
            })
        })
        .await;
    if let Err(e) = written {
        hub.tally.restore(due);
        return Err(e);
    }
    Ok(())
}

/// Flushes every [`FLUSH_EVERY`] while the server runs.
pub async fn run(hub: Hub) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = flush(&hub).await {
            tracing::warn!(error = %e, "writing the bytes served by range requests failed; trying again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_counted_in_memory_only_after_its_first_range_was_written() {
        let t = Tally::default();
        assert!(!t.add("s", 10));
        t.written("s");
        assert!(t.add("s", 10));
        assert!(t.add("s", 5));
        assert_eq!(t.pending("s"), 15);
        assert_eq!(t.take(), vec![("s".to_owned(), 15)]);
        assert_eq!(t.pending("s"), 0);
        assert!(t.take().is_empty());
        t.restore(vec![("s".to_owned(), 7)]);
        assert_eq!(t.pending("s"), 7);
    }
}
