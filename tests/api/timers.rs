//! Session expiry: every state with a timer, on read, by the sweeper, and across a restart.

use serde_json::json;

use crate::helpers::{Backend, TestApp, seed_request};

crate::on_both_backends!(every_timer_fires, the_sweeper_expires_unread_sessions, expiry_survives_a_restart);

const SHORT: std::time::Duration = std::time::Duration::from_millis(1200);

fn short_timeouts() -> serde_json::Value {
    json!({"timeouts": {"up_to_date": 1, "ready": 1, "created": 1, "unconfirmed": 1, "success": 1, "fail": 1}})
}

async fn every_timer_fires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.patch("/api/v1/delivery-procedures/dp-handle", short_timeouts()).await.expect(200);
    app.firmware("1.0.0", vec![1; 10], true).await;

    let ready = app.request_update(seed_request("0.1.0")).await.expect(201).id();
    let up = app.request_update(seed_request("1.0.0")).await.expect(201).id();
    let created = app.ready_deliverable("0.1.0").await.id();
    let success = app.ready_deliverable("0.1.0").await.id();
    app.confirm_session(&success, true).await.expect(200);
    let fail = app.ready_deliverable("0.1.0").await.id();
    app.confirm_session(&fail, false).await.expect(200);

    tokio::time::sleep(SHORT).await;
    // ready, up_to_date, success, fail: gone (404)
    for id in [&ready, &up, &success, &fail] {
        app.session(id).await.expect_error(404, "not_found");
        app.start_session(id).await.expect_error(404, "not_found");
    }
    // created: not confirmed in time → unconfirmed, finished
    let unconfirmed = app.session(&created).await.expect(200);
    assert_eq!(unconfirmed.body["state"], "unconfirmed");
    assert_eq!(unconfirmed.body["finished"], true);
    app.confirm_session(&created, true).await.expect_error(409, "session_state");
    tokio::time::sleep(SHORT).await;
    app.session(&created).await.expect_error(404, "not_found");

    // all of them stay in the device's history
    let device =
        app.get("/api/v1/devices?device_id=my-device-id").await.body["results"][0]["id"].as_str().unwrap().to_owned();
    let history = app.get(&format!("/api/v1/devices/{device}/sessions")).await.expect(200);
    assert_eq!(history.body["count"], 5);
    assert!(history.body["results"].as_array().unwrap().iter().all(|s| s["expired"] == true));
    let unconf = history.body["results"].as_array().unwrap().iter().find(|s| s["id"] == created.as_str()).unwrap();
    assert_eq!(unconf["state"], "unconfirmed");
}

async fn the_sweeper_expires_unread_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.patch("/api/v1/delivery-procedures/dp-handle", short_timeouts()).await.expect(200);
    app.firmware("1.0.0", vec![1; 10], true).await;
    let id = app.request_update(seed_request("0.1.0")).await.id();
    assert_eq!(app.get("/api/v1/firmware-update?expired=true").await.body["count"], 0);
    tokio::time::sleep(SHORT + std::time::Duration::from_millis(300)).await;
    // nobody read the session; the sweeper moved it to the history on its own
    let expired = app.get("/api/v1/firmware-update?expired=true").await.expect(200);
    assert_eq!(expired.body["count"], 1);
    assert_eq!(expired.body["results"][0]["id"], id);
    assert_eq!(app.get("/api/v1/firmware-update").await.body["count"], 0);
}

async fn expiry_survives_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![1; 10], true).await;
    app.patch(
        "/api/v1/delivery-procedures/dp-handle",
        json!({"timeouts": {"ready": 2, "created": 2, "unconfirmed": 60}}),
    )
    .await
    .expect(200);
    let ready = app.request_update(seed_request("0.1.0")).await.id();
    let created = app.ready_deliverable("0.1.0").await.id();
    let long_lived = {
        app.patch("/api/v1/delivery-procedures/dp-handle", json!({"timeouts": {"ready": 600}})).await.expect(200);
        app.request_update(seed_request("0.1.0")).await.id()
    };

    // stop, wait out the timers while nothing runs, start again over the same data
    let env = app.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let app = TestApp::start(env, |_| {}).await;
    app.session(&ready).await.expect_error(404, "not_found");
    let unconfirmed = app.session(&created).await.expect(200);
    assert_eq!(unconfirmed.body["state"], "unconfirmed");
    let still = app.session(&long_lived).await.expect(200);
    assert_eq!(still.body["state"], "ready", "a timer that has not run out keeps its session");
    let expired = app.get("/api/v1/firmware-update?expired=true").await.expect(200);
    assert_eq!(expired.body["count"], 1);
}
