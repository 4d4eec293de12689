//! A short-lived memory of answers that each cost a database round trip, for requests that
//! repeat the same question many times a second: a device fetching an image in ranges asks
//! "may this link have that object?" for every range. An answer is reused only while this
//! process has committed no write transaction since it was read (`db::committed_writes`: a
//! cancel, a quarantine or a new deliverable here is seen by the next request), and for at
//! most [`TTL`], the longest another instance's change can go unseen.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::db;

/// How long an answer is reused at most.
pub const TTL: Duration = Duration::from_secs(2);

/// How many answers are kept; a full memory is emptied (it refills in one round trip each).
const CAPACITY: usize = 4096;

pub struct Recent<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    writes: u64,
    read_at: Instant,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { entries: Mutex::default() }
    }
}

/// When an answer was read: take it before asking the database.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    writes: u64,
    read_at: Instant,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp { writes: db::committed_writes(), read_at: Instant::now() }
    }
}

impl<V: Clone> Recent<V> {
    /// The answer to `key`, if it is still good.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key)?;
        (entry.writes == db::committed_writes() && entry.read_at.elapsed() < TTL).then(|| entry.value.clone())
    }

    /// Remembers the answer to `key`, read at `stamp`.
    pub fn put(&self, key: String, value: V, stamp: Stamp) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, Entry { value, writes: stamp.writes, read_at: stamp.read_at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_forgotten_after_a_committed_write() -> crate::error::Result<()> {
        let recent = Recent::default();
        recent.put("a".into(), 1, Stamp::now());
        assert_eq!(recent.get("a"), Some(1));
        assert_eq!(recent.get("b"), None);
        let dir = tempfile::tempdir().map_err(crate::error::Error::internal)?;
        let url = format!("sqlite://{}", dir.path().join("t.sqlite3").display());
        let db = db::Db::connect(&url, 1).map_err(crate::error::Error::Internal)?;
        db.run_blocking(|conn| db::write_transaction(conn, |_| Ok::<(), crate::error::Error>(())))?;
        assert_eq!(recent.get("a"), None, "a write committed since it was read");
        Ok(())
    }
}
