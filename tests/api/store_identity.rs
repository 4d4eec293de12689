//! One database, one object store (issue 9, defect 10). Instances sharing a database but
//! not its object store used to run side by side, and most sessions then failed with
//! "object not found". The store now carries a marker whose id the database records; an
//! instance whose store does not match refuses to start and says what to do.

use devicehub::settings::Settings;
use devicehub::startup::Application;
use futures_util::future::join_all;

use crate::helpers::{Backend, TestApp, TestEnv, pseudo_random};

crate::on_both_backends!(
    a_second_store_for_one_database_is_refused,
    a_store_with_objects_is_not_taken_by_a_new_database,
    fresh_starts_at_once_with_separate_stores_let_one_through
);

/// The settings of `env` with the object store in a directory of its own.
fn with_store(env: &TestEnv, store: &std::path::Path) -> Settings {
    let mut s = env.settings();
    s.object_store = store.display().to_string();
    s
}

/// Builds an application that must refuse to start; returns what it said.
async fn refused(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("started although its object store is not the database's"),
        Err(e) => format!("{e:#}"),
    }
}

async fn a_second_store_for_one_database_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // a second instance on the same database, before anything is stored, with a store of its own
    let other = tempfile::tempdir().unwrap();
    let said = refused(with_store(&app.env, other.path())).await;
    assert!(said.contains("DEVICEHUB_OBJECT_STORE"), "{said}");
    assert!(said.contains(&other.path().display().to_string()), "the message names the store: {said}");

    // and once the database records objects
    app.seed_catalog().await;
    app.firmware("1.0.0", pseudo_random(100_000, 1), true).await;
    let said = refused(with_store(&app.env, other.path())).await;
    assert!(said.contains("DEVICEHUB_OBJECT_STORE"), "{said}");

    // a store marked by another installation is refused too
    let stranger = TestApp::spawn(backend).await;
    let said = refused(with_store(&app.env, &stranger.env.objects_dir())).await;
    assert!(said.contains("another"), "{said}");

    // the right store still starts, beside the first instance
    let env = app.stop().await;
    let again = TestApp::start(env, |_| {}).await;
    again.get("/api/v1/firmware").await.expect(200);

    // `devicehub adopt-store` makes a store the database's when that is really meant
    let settings = with_store(&again.env, other.path());
    let (db, storage) = devicehub::startup::open(&settings).await.unwrap();
    devicehub::service::store_identity::adopt(&db, &storage).await.unwrap();
    Application::build(settings).await.expect("an adopted store starts");
}

async fn a_store_with_objects_is_not_taken_by_a_new_database(backend: Backend) {
    // an installation with an image
    let first = TestApp::spawn(backend).await;
    first.seed_catalog().await;
    first.firmware("1.0.0", pseudo_random(100_000, 2), true).await;
    let objects = first.env.objects_dir();

    // a new, empty database pointed at its store (a typo in DATABASE_URL, a lost database):
    // starting would let the orphan sweep delete what the store holds
    let fresh = TestEnv::new(backend);
    let said = refused(with_store(&fresh, &objects)).await;
    assert!(said.contains("DATABASE_URL"), "{said}");
    assert!(said.contains("adopt-store"), "{said}");

    // a store that holds no objects yet (only its marker) is simply taken over
    let empty = TestApp::spawn(backend).await;
    let store = empty.env.objects_dir();
    let fresh = TestEnv::new(backend);
    let app = Application::build(with_store(&fresh, &store)).await.expect("an empty marked store is taken over");
    drop(app);
}

async fn fresh_starts_at_once_with_separate_stores_let_one_through(backend: Backend) {
    let env = TestEnv::new(backend);
    let stores: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let builds = stores.iter().map(|d| Application::build(with_store(&env, d.path())));
    let results = join_all(builds).await;
    let started = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        started,
        1,
        "{:?}",
        results.iter().map(|r| r.as_ref().err().map(|e| format!("{e:#}"))).collect::<Vec<_>>()
    );
}
