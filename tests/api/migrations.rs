//! The one migration tree works on both backends: up, all the way down, and up again; and a
//! database a server already migrated opens again with nothing to apply.

use devicehub::db::{AnyConnection, Db, MIGRATIONS};
use diesel_migrations::MigrationHarness;

use crate::helpers::{Backend, TestEnv};

crate::on_both_backends!(migrations_go_up_down_and_up_again);

fn revert_all(db: &Db) -> Vec<String> {
    db.run_blocking(|conn| {
        let reverted = match conn {
            AnyConnection::Sqlite(c) => c.revert_all_migrations(MIGRATIONS),
            AnyConnection::Postgresql(c) => c.revert_all_migrations(MIGRATIONS),
        }
        .map_err(|e| devicehub::error::Error::internal(e.to_string()))?;
        Ok(reverted.into_iter().map(|v| v.to_string()).collect())
    })
    .expect("revert")
}

async fn migrations_go_up_down_and_up_again(backend: Backend) {
    let env = TestEnv::new(backend);
    let url = env.database_url.clone();
    tokio::task::spawn_blocking(move || {
        let db = Db::connect(&url, 2).expect("connect");
        let applied = db.migrate().expect("up");
        assert!(applied.len() >= 3, "{applied:?}");
        assert!(db.migrate().expect("again").is_empty(), "an up-to-date database has nothing to apply");
        let reverted = revert_all(&db);
        assert_eq!(reverted.len(), applied.len(), "every migration has a down");
        assert_eq!(db.migrate().expect("up again"), applied);
    })
    .await
    .expect("blocking task");
}
