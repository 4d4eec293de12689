//! Persistence: an r2d2 pool of [`AnyConnection`]s, embedded migrations per backend, and
//! [`Db::run`], which moves blocking diesel work off the async executor threads.
//! Queries live next to their table (`db::<table>`); protocols never write SQL.
//!
//! Lookups by a primary or unique key use `get_result`, not `first`: `first` binds
//! `LIMIT ?`, and SQLite (built with STAT4) re-prepares a statement whose bound LIMIT
//! changed, i.e. on every execution; that was half of the CPU of a status poll.

pub mod artifact;
pub mod assignment;
pub mod channel;
pub mod conn;
pub mod counter;
pub mod delivery;
pub mod device;
pub mod firmware;
pub mod grant;
pub mod job;
pub mod model;
pub mod object_check;
pub mod output_claim;
pub mod overview;
pub mod product;
pub mod schema;
pub mod secret;
pub mod session;
pub mod signing_key;
pub mod token;
pub mod user;
pub mod web;

use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use conn::{
    AnyConnection, Backend, Target, bookkeeping_transaction_retrying, committed_writes, write_transaction,
    write_transaction_retrying,
};

use crate::error::{Error, Result, SpaceLatch};

/// One tree of migrations for both backends: the SQL is written in the dialect both share
/// (UUIDs and JSON as text, UTC timestamps), as `schema.rs` is one schema for both. A
/// migration that ever needs a dialect of its own can branch on the backend in Rust.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The counter `readyz` bumps to see whether the database takes writes again.
const SPACE_PROBE_COUNTER: &str = "space_probe";

/// An arbitrary, fixed key for the PostgreSQL advisory lock that serialises migrations
/// when several instances start at once.
const MIGRATION_LOCK_KEY: i64 = 0x6465_7669_6365_6875; // "devicehu"

pub type Pool = r2d2::Pool<conn::Manager>;

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    /// Set when a query found no space left; cleared when a probe write fits again.
    full: std::sync::Arc<SpaceLatch>,
    /// The SQLite file, for the lock that makes first starts take turns.
    sqlite_file: Option<std::path::PathBuf>,
}

impl Db {
    /// Opens a pool. For SQLite the parent directory is created, so the embedded default
    /// works on a fresh checkout.
    pub fn connect(url: &str, pool_size: u32) -> anyhow::Result<Db> {
        let target = Target::parse(url)?;
        if let Target::Sqlite(path) = &target
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let backend = target.backend();
        let sqlite_file = match &target {
            Target::Sqlite(path) => Some(path.clone()),
            Target::Postgres(_) => None,
        };
        let manager = conn::Manager::new(target);
        // One direct connection first, on this thread: a wrong URL fails here, at once,
        // with the driver's own message.
        r2d2::ManageConnection::connect(&manager)
            .with_context(|| format!("connecting to the {} database", backend.name()))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // No idle connections kept warm by r2d2's background threads: a connection being
            // opened there while the process exits races OpenSSL's exit-time cleanup (libpq
            // probes TLS) and crashes; connections open on demand instead.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            // A broken connection fails its query and is then discarded (`has_broken`);
            // a `SELECT 1` before every use would be one more round trip per request.
            .test_on_check_out(false)
            .build(manager)
            .with_context(|| format!("connecting to the {} database", backend.name()))?;
        Ok(Db { pool, backend, full: Default::default(), sqlite_file })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's connections: (open, idle, the most it opens).
    pub fn pool_use(&self) -> (u32, u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections, self.pool.max_size())
    }

    /// Applies pending migrations (embedded in the binary) and returns their names.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.pool.get().context("getting a connection to migrate")?;
        let applied = match &mut *conn {
            AnyConnection::Sqlite(c) => {
                // Processes starting at once on one file take turns for the whole of it,
                // switching to WAL included: that switch needs the file to itself and, when
                // another process is mid-transaction, SQLite may answer "database is locked"
                // at once instead of waiting (its deadlock avoidance skips busy_timeout).
                let _turn = match &self.sqlite_file {
                    Some(file) => Some(lock_file_for_migration(file)?),
                    None => None,
                };
                // WAL lets readers proceed while one writer commits; it is a property of
                // the database file, so setting it once here is enough.
                c.batch_execute("PRAGMA journal_mode = WAL;")?;
                // The write lock keeps out instances already running (each migration
                // becomes a savepoint inside it).
                write_transaction(&mut conn, |conn| match conn {
                    AnyConnection::Sqlite(c) => run_migrations(c, MIGRATIONS),
                    AnyConnection::Postgresql(_) => Ok(Vec::new()),
                })?
            }
            AnyConnection::Postgresql(c) => {
                c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
                let result = run_migrations(c, MIGRATIONS);
                c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
                result?
            }
        };
        Ok(applied)
    }

    /// Runs blocking database work on tokio's blocking pool, with a pooled connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let request_id = crate::telemetry::request_id::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            crate::telemetry::request_id::on_thread(request_id, || {
                let mut conn = pool.get()?;
                f(&mut conn)
            })
        })
        .await
        .map_err(|e| Error::internal(format!("database task failed: {e}")))?
        .map_err(|e| self.full.note(e))
    }

    /// The same as [`Db::run`] for callers that are already on a blocking thread.
    pub fn run_blocking<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn).map_err(|e| self.full.note(e))
    }

    /// `None` while the database takes writes. After a query found no space, says what it
    /// answered until a small write (a probe: one counter row) commits again.
    pub async fn out_of_space(&self) -> Option<String> {
        let last = self.full.last()?;
        match self.run(|conn| write_transaction(conn, |conn| Ok(counter::bump(conn, SPACE_PROBE_COUNTER)?))).await {
            Ok(()) => {
                self.full.clear();
                None
            }
            Err(_) => Some(self.full.last().unwrap_or(last)),
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(Error::from)).await
    }
}

/// An exclusive advisory lock on `<database file>.lock`, held until the returned file is
/// dropped (the OS releases it if the process dies).
fn lock_file_for_migration(database: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .with_context(|| format!("opening {}", std::path::Path::new(&name).display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!(lock = %std::path::Path::new(&name).display(), "waiting for another instance's start-up migration");
            file.lock().with_context(|| format!("locking {}", std::path::Path::new(&name).display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", std::path::Path::new(&name).display()));
        }
    }
    Ok(file)
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> anyhow::Result<Vec<String>>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    let done = conn.run_pending_migrations(migrations).map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    Ok(done.into_iter().map(|v| v.to_string()).collect())
}

/// Makes concurrent first starts take turns until the current transaction ends: on
/// PostgreSQL an advisory lock (SQLite's write transaction already serialises them).
pub fn lock_for_first_start(conn: &mut AnyConnection) -> Result<()> {
    if let AnyConnection::Postgresql(c) = conn {
        c.batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))?;
    }
    Ok(())
}

/// Converts a UUID column value. Ids are written only by us, so a bad one is a bug.
pub fn parse_id(raw: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|e| Error::internal(format!("bad id {raw:?} in the database: {e}")))
}

/// A window of a list: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// `find(conn, id)` and `find_by_ref(conn, &ObjectRef)` for a table with an `id` and a
/// unique `tid`: every catalog object is looked up the same way.
macro_rules! handle_lookups {
    ($table:ident, $row:ty) => {
        pub fn find(conn: &mut $crate::db::AnyConnection, id: &str) -> diesel::QueryResult<Option<$row>> {
            use diesel::prelude::*;
            $table::table.find(id).select(<$row>::as_select()).get_result(conn).optional()
        }

        pub fn find_by_ref(
            conn: &mut $crate::db::AnyConnection,
            r: &$crate::domain::ids::ObjectRef,
        ) -> diesel::QueryResult<Option<$row>> {
            use diesel::prelude::*;
            match r {
                $crate::domain::ids::ObjectRef::Id(id) => find(conn, &id.to_string()),
                $crate::domain::ids::ObjectRef::Tid(tid) => {
                    $table::table.filter($table::tid.eq(tid)).select(<$row>::as_select()).get_result(conn).optional()
                }
            }
        }
    };
}
pub(crate) use handle_lookups;

/// `insert` and `delete` (by `id`) for a table, and `update` (by `id`, with a change set)
/// when one is given: the same three functions for every table, written once.
macro_rules! row_writes {
    ($table:ident, $row:ty) => {
        pub fn insert(conn: &mut $crate::db::AnyConnection, row: &$row) -> diesel::QueryResult<()> {
            use diesel::prelude::*;
            diesel::insert_into($table::table).values(row).execute(conn).map(drop)
        }

        pub fn delete(conn: &mut $crate::db::AnyConnection, id: &str) -> diesel::QueryResult<usize> {
            use diesel::prelude::*;
            diesel::delete($table::table.find(id)).execute(conn)
        }
    };
    ($table:ident, $row:ty, $changes:ty) => {
        $crate::db::row_writes!($table, $row);

        pub fn update(conn: &mut $crate::db::AnyConnection, id: &str, changes: &$changes) -> diesel::QueryResult<()> {
            use diesel::prelude::*;
            diesel::update($table::table.find(id)).set(changes).execute(conn).map(drop)
        }
    };
}
pub(crate) use row_writes;

/// One page of a list and its total: `$query` (an expression that builds the filtered
/// query, evaluated twice) counted, then ordered by `$order`, cut to `$page` and loaded as
/// `$select`.
macro_rules! page_of {
    ($conn:expr, $query:expr, $order:expr, $select:expr, $page:expr) => {{
        let total = $query.count().get_result($conn)?;
        let rows = $query.order($order).limit($page.limit).offset($page.offset).select($select).load($conn)?;
        Ok((rows, total))
    }};
}
pub(crate) use page_of;

/// A product-scoped handle table (models, channels): the same columns, rules and queries,
/// written once. Generates the row struct, its change set, the handle lookups, and
/// `insert`, `update`, `delete` and `list` (optionally of one product, and only in the
/// products a caller may read).
macro_rules! product_scoped_table {
    ($table:ident, $row:ident, $changes:ident) => {
        use chrono::NaiveDateTime;
        use diesel::prelude::*;

        use $crate::db::AnyConnection;
        use $crate::db::schema::$table;

        #[derive(Debug, Clone, Queryable, Selectable, Insertable)]
        #[diesel(table_name = $table)]
        pub struct $row {
            pub id: String,
            pub tid: String,
            pub name: String,
            pub product_id: String,
            pub created_at: NaiveDateTime,
            pub updated_at: NaiveDateTime,
        }

        #[derive(Debug, Default, AsChangeset)]
        #[diesel(table_name = $table)]
        pub struct $changes {
            pub tid: Option<String>,
            pub name: Option<String>,
            pub updated_at: Option<NaiveDateTime>,
        }

        $crate::db::handle_lookups!($table, $row);
        $crate::db::row_writes!($table, $row, $changes);

        pub fn list(
            conn: &mut AnyConnection,
            product: Option<&str>,
            only: Option<&[String]>,
            page: $crate::db::Page,
        ) -> QueryResult<(Vec<$row>, i64)> {
            let query = || {
                let mut q = $table::table.into_boxed();
                if let Some(product) = product {
                    q = q.filter($table::product_id.eq(product.to_owned()));
                }
                if let Some(ids) = only {
                    q = q.filter($table::product_id.eq_any(ids.to_vec()));
                }
                q
            };
            $crate::db::page_of!(conn, query(), ($table::created_at, $table::id), $row::as_select(), page)
        }
    };
}
pub(crate) use product_scoped_table;
