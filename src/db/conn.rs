//! One connection type for both backends. Nearly every query is written once against
//! [`AnyConnection`]; only dialect bits (`BEGIN IMMEDIATE`, `FOR UPDATE SKIP LOCKED`)
//! match on the variant. The variant is chosen from the URL scheme, never by trying
//! backends in order (SQLite would accept any string as a file name).

use std::path::PathBuf;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where to connect, parsed from `DATABASE_URL`.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// `sqlite://path`, `sqlite:path`, a path ending in `.sqlite3`/`.sqlite`/`.db`,
    /// or `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if [".sqlite3", ".sqlite", ".db"].iter().any(|ext| url.ends_with(ext)) && !url.contains("://") {
            url
        } else {
            anyhow::bail!("unsupported DATABASE_URL (expected sqlite://<file> or postgres://…)");
        };
        if path.is_empty() || path.contains(":memory:") {
            anyhow::bail!("DATABASE_URL: an in-memory SQLite database cannot be shared by a pool; give a file");
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// The r2d2 manager: opens the right variant and prepares each connection.
#[derive(Debug)]
pub struct Manager {
    target: Target,
}

impl Manager {
    pub fn new(target: Target) -> Self {
        Manager { target }
    }
}

/// Per-connection SQLite settings: wait for locks instead of failing at once, enforce
/// foreign keys (off by default in SQLite), and fsync less often under WAL (still safe
/// against application crashes; the last commits may be lost on power loss).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnError;

    fn connect(&self) -> Result<AnyConnection, ConnError> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
                conn.batch_execute(SQLITE_PRAGMAS)?;
                Ok(AnyConnection::Sqlite(conn))
            }
            Target::Postgres(url) => Ok(AnyConnection::Postgresql(diesel::PgConnection::establish(url)?)),
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnError> {
        conn.batch_execute("SELECT 1").map_err(ConnError::from)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        <AnyConnection as TransactionManager<AnyConnection>>::is_broken_transaction_manager(conn)
    }
}

impl AnyConnection {
    pub fn backend(&self) -> Backend {
        match self {
            AnyConnection::Postgresql(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

static COMMITTED_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many write transactions this process has committed (any database). An answer read
/// when this was `n` is still what the database says while it is `n`, as far as this
/// process's writes go: `service::recent` reuses answers on that condition.
pub fn committed_writes() -> u64 {
    COMMITTED_WRITES.load(std::sync::atomic::Ordering::Acquire)
}

/// Runs `f` in a transaction that may write. On SQLite it is `BEGIN IMMEDIATE`: the write
/// lock is taken up front, so two writers queue on `busy_timeout` instead of one failing
/// with SQLITE_BUSY when it tries to upgrade a read lock.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let value = write_transaction_uncounted(conn, f)?;
    COMMITTED_WRITES.fetch_add(1, std::sync::atomic::Ordering::Release);
    Ok(value)
}

/// [`write_transaction`] for bookkeeping that changes nothing an earlier answer depends on
/// (a download's byte count and its one DOWNLOAD event), so it does not count as a write
/// for [`committed_writes`]: otherwise every range of a download would end the reuse of its
/// link check (`service::recent`).
fn write_transaction_uncounted<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        AnyConnection::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?,
        AnyConnection::Postgresql(_) => <AnyConnection as TransactionManager<AnyConnection>>::begin_transaction(conn)?,
    }
    match f(conn) {
        Ok(value) => {
            <AnyConnection as TransactionManager<AnyConnection>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The original error matters more than a failed rollback; a broken connection
            // is detected by the pool (`has_broken`) and thrown away.
            let _ = <AnyConnection as TransactionManager<AnyConnection>>::rollback_transaction(conn);
            Err(err)
        }
    }
}

/// How often a transaction the database aborted for a deadlock or a serialization failure
/// is run again before the caller gets `409 concurrent_update`.
const CONTENTION_RETRIES: u32 = 4;

/// [`write_transaction`], run again when PostgreSQL aborted it for a deadlock or a
/// serialization failure (nothing of it was kept, so it is safe to repeat), after a short
/// random pause so the contenders do not meet again.
pub fn write_transaction_retrying<T, F>(conn: &mut AnyConnection, f: F) -> crate::error::Result<T>
where
    F: FnMut(&mut AnyConnection) -> crate::error::Result<T>,
{
    retrying(conn, f, true)
}

/// [`write_transaction_retrying`] for bookkeeping (see [`write_transaction_uncounted`]).
pub fn bookkeeping_transaction_retrying<T, F>(conn: &mut AnyConnection, f: F) -> crate::error::Result<T>
where
    F: FnMut(&mut AnyConnection) -> crate::error::Result<T>,
{
    retrying(conn, f, false)
}

fn retrying<T, F>(conn: &mut AnyConnection, mut f: F, counted: bool) -> crate::error::Result<T>
where
    F: FnMut(&mut AnyConnection) -> crate::error::Result<T>,
{
    let mut tries = 0;
    loop {
        let outcome = if counted { write_transaction(conn, &mut f) } else { write_transaction_uncounted(conn, &mut f) };
        match outcome {
            Err(e) if e.is_contention() && tries < CONTENTION_RETRIES => {
                tries += 1;
                let pause = rand::random_range(2..20u64) * u64::from(tries);
                tracing::debug!(error = %e, tries, pause_ms = pause, "transaction aborted by contention; running it again");
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert!(
            matches!(Target::parse("sqlite://./data/x.sqlite3"), Ok(Target::Sqlite(p)) if p.as_os_str() == "./data/x.sqlite3")
        );
        assert!(matches!(Target::parse("sqlite:/tmp/x"), Ok(Target::Sqlite(_))));
        assert!(matches!(Target::parse("/tmp/hub.db"), Ok(Target::Sqlite(_))));
        assert!(matches!(Target::parse("postgres://localhost/test"), Ok(Target::Postgres(_))));
        assert!(Target::parse("mysql://localhost/x").is_err());
        assert!(Target::parse("typo").is_err());
        assert!(Target::parse("sqlite::memory:").is_err());
    }
}
