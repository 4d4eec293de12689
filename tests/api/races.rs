//! Racing callers: an admin's cancel right behind a device's start, a re-assignment while
//! the previous session finishes, two instances starting at once on an empty database.
//! Each call succeeds or gets a meaningful 409; none is a 500.

use devicehub::startup::Application;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestEnv, seed_request};

crate::on_both_backends!(
    a_cancel_racing_the_worker_succeeds,
    reassigning_while_the_previous_session_finishes,
    two_instances_start_at_once_on_an_empty_database
);

async fn a_cancel_racing_the_worker_succeeds(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.workers = 2).await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![3; 64 * 1024], true).await;
    let mut conflicts = 0;
    const N: usize = 60;
    for n in 0..N {
        let mut body = seed_request("0.1.0");
        body["device_id"] = json!(format!("racer-{n}"));
        let id = app.request_update(body).await.expect(201).id();
        app.start_session(&id).await.expect(200);
        let r = app.post(&format!("/api/v1/firmware-update/{id}/cancel"), json!({})).await;
        match r.status {
            200 => {
                // queued or processing: ended at once, whichever the worker had reached
                assert_eq!(r.body["state"], "fail", "{}", r.body);
                assert!(r.body["payload"]["reason"].as_str().unwrap().starts_with("canceled by"), "{}", r.body);
            }
            409 => conflicts += 1,
            other => panic!("cancel answered {other}: {}", r.body),
        }
    }
    // the cancel decides again on what the session became; a 409 is the rare exception
    assert!(conflicts * 10 < N, "{conflicts} of {N} cancels answered 409");
}

async fn reassigning_while_the_previous_session_finishes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.workers = 2).await;
    app.seed_catalog().await;
    let one = app.firmware("1.1.0", vec![1; 32 * 1024], true).await;
    let two = app.firmware("1.2.0", vec![2; 32 * 1024], true).await;
    app.post(
        "/api/v1/devices",
        json!({"device_id": "busy", "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "1.0.0"}),
    )
    .await
    .expect(201);
    for n in 0..30 {
        let fw = if n % 2 == 0 { &one } else { &two };
        let r = app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["busy"]})).await;
        assert!(r.status == 201 || (r.status == 409 && r.code() == "concurrent_update"), "{}: {}", r.status, r.body);
    }
}

async fn two_instances_start_at_once_on_an_empty_database(backend: Backend) {
    // a few rounds, each on a fresh database: the race is a matter of timing
    for _ in 0..6 {
        two_instances_start_together(backend).await;
    }
}

async fn two_instances_start_together(backend: Backend) {
    let env = TestEnv::new(backend);
    let (a, b) = tokio::join!(Application::build(env.settings()), Application::build(env.settings()));
    let (a, b) = (a.expect("the first instance starts"), b.expect("the second instance starts"));
    let ports = [a.port(), b.port()];
    tokio::spawn(a.run_until_stopped());
    tokio::spawn(b.run_until_stopped());
    // exactly one admin was made, and both instances accept its token
    for port in ports {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/v1/users"))
            .header("Authorization", format!("Token {}", crate::helpers::ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["count"], 1, "{body}");
    }
}
