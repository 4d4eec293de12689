//! Secrets the database keeps are sealed under a key outside it (`service::sealing`): the
//! first start writes `<data_dir>/sealing.key` (owner-only); an instance given other keys
//! refuses to start and says why; keys rotate by putting a new one first and resealing.

use std::sync::Arc;

use devicehub::service::sealing::{self, Sealer};
use devicehub::settings::Secret;
use devicehub::startup::Application;

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(the_key_file_is_made_once_and_other_keys_are_refused, keys_rotate_by_resealing);

async fn refused(settings: devicehub::settings::Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("started with a sealing key that does not match the database"),
        Err(e) => format!("{e:#}"),
    }
}

/// The hex key of the default key file.
fn key_in_file(app: &TestApp) -> String {
    let text = std::fs::read_to_string(app.env.dir.path().join("sealing.key")).expect("the key file exists");
    text.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).expect("a key line").trim().to_owned()
}

async fn the_key_file_is_made_once_and_other_keys_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let file = app.env.dir.path().join("sealing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the owner reads the sealing key");
    }
    let key = key_in_file(&app);
    assert_eq!(key.len(), 64);

    // a second instance with another key on the same database is refused, with the fix named
    let mut other = app.env.settings();
    other.sealing_key = Some(Secret::new(Sealer::generate_key()));
    let said = refused(other).await;
    assert!(said.contains("sealing key does not match"), "{said}");
    assert!(said.contains("DEVICEHUB_SEALING_KEY"), "{said}");

    // a restart keeps the file and its key
    let env = app.stop().await;
    let again = TestApp::start(env, |_| {}).await;
    assert_eq!(key_in_file(&again), key);
    again.get("/api/v1/users").await.expect(200);
}

async fn keys_rotate_by_resealing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = key_in_file(&app);
    let new = Sealer::generate_key();
    let env = app.stop().await;

    // the new key first, the old one still given: starts, and reseal moves everything over
    let app = TestApp::start(env, |s| s.sealing_key = Some(Secret::new(format!("{new},{old}")))).await;
    let sealer = Arc::new(Sealer::from_hex_keys(&[new.as_str(), old.as_str()]).unwrap());
    let done = sealing::reseal_everything(&app.hub.db, sealer.clone()).await.unwrap();
    assert!(done.values >= 1, "the canary at least was sealed again");
    assert_eq!(sealing::reseal_everything(&app.hub.db, sealer).await.unwrap().values, 0, "nothing left to move");
    let env = app.stop().await;

    // now the old key can go
    let app = TestApp::start(env, |s| s.sealing_key = Some(Secret::new(new.clone()))).await;
    app.get("/api/v1/users").await.expect(200);
    let env = app.stop().await;

    // and the old key alone no longer opens what the database keeps
    let mut only_old = env.settings();
    only_old.sealing_key = Some(Secret::new(old));
    let said = refused(only_old).await;
    assert!(said.contains("sealing key does not match"), "{said}");
}
