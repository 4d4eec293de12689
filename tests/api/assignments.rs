//! Large assignments run as a job (issue 14): `202` with the assignment, its progress at
//! `GET /api/v1/assignments/{id}`, and the same rules per device as an assignment made
//! within the request: one open action per device, the queue limit, other models skipped.

use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, pseudo_random};

crate::on_both_backends!(
    a_large_assignment_runs_as_a_job_under_the_same_rules,
    an_assignment_job_obeys_the_queue_limit,
);

/// Makes devices `{prefix}-0…` of `CAFEBABE`; their identities.
async fn devices(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let device_id = format!("{prefix}-{i}");
        let body = json!({"device_id": device_id, "model": "CAFEBABE", "channel": "BAADFOOD"});
        app.post("/api/v1/devices", body).await.expect(201);
        ids.push(device_id);
    }
    ids
}

/// Waits (without a time limit of its own: the test runner's is enough) until the
/// assignment is over; its last progress.
async fn finished(app: &TestApp, started: &Resp) -> Resp {
    let location = started.headers.get("location").expect("a Location").to_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/assignments/{}", started.id()));
    loop {
        let progress = app.get(&location).await.expect(200);
        if progress.body["state"] != "running" {
            return progress;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The live sessions of a firmware.
async fn sessions_of(app: &TestApp, fw: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/firmware-update?firmware={fw}&expired=all&limit=1000")).await.expect(200);
    r.body["results"].as_array().unwrap().clone()
}

async fn a_large_assignment_runs_as_a_job_under_the_same_rules(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.assign_sync_max = 2).await;
    app.seed_catalog().await;
    let first = app.firmware("1.1.0", pseudo_random(10_000, 3), true).await;
    // more than one chunk of devices, and one of another model, which is skipped
    let mut named = devices(&app, "job", 30).await;
    app.post("/api/v1/models", json!({"tid": "OTHER", "name": "o", "product": "P1"})).await.expect(201);
    let body = json!({"device_id": "other-model", "model": "OTHER", "channel": "BAADFOOD"});
    app.post("/api/v1/devices", body).await.expect(201);
    named.push("other-model".into());

    let started = app.post(&format!("/api/v1/firmware/{first}/assign"), json!({"devices": named})).await.expect(202);
    assert_eq!(started.body["total"], 31);
    let done = finished(&app, &started).await;
    assert_eq!(done.body["state"], "done", "{}", done.body);
    assert_eq!((done.body["done"].as_i64(), done.body["assigned"].as_i64()), (Some(31), Some(30)));
    assert_eq!(done.body["skipped"], json!([{"device": "other-model", "reason": "the device is of another model"}]));
    assert!(done.body["finished_at"].is_string());
    let made = sessions_of(&app, &first).await;
    let mut assigned: Vec<&str> = made.iter().map(|s| s["device"].as_str().unwrap()).collect();
    assigned.sort();
    assigned.dedup();
    assert_eq!(assigned.len(), 30, "one session per device");

    // a small assignment is still made within the request
    let small = app.post(&format!("/api/v1/firmware/{first}/assign"), json!({"devices": ["job-0"]})).await.expect(201);
    assert_eq!(small.body["sessions"].as_array().unwrap().len(), 1);

    // a second large assignment supersedes every open one: each older session ends or is
    // asked to cancel, so a device is offered one action at a time
    let second = app.firmware("1.2.0", pseudo_random(10_000, 4), true).await;
    let started =
        app.post(&format!("/api/v1/firmware/{second}/assign"), json!({"devices": &named[..30]})).await.expect(202);
    assert_eq!(finished(&app, &started).await.body["assigned"], 30);
    for old in sessions_of(&app, &first).await {
        let id = old["id"].as_str().unwrap();
        let s = app.session(id).await.expect(200);
        let superseded =
            s.body["state"] == "fail" && s.body["payload"]["reason"].as_str().is_some_and(|r| r.contains("superseded"));
        let asked = app.event_kinds(id).await.contains(&"cancel_requested".to_owned());
        assert!(superseded || asked, "an older session is still open: {}", s.body);
    }

    // a stranger does not learn that the assignment exists
    let stranger = app.user_with_role("stranger", None, None).await;
    let path = format!("/api/v1/assignments/{}", started.id());
    let r = app.call(reqwest::Method::GET, &path, Some(&stranger), None).await;
    assert_eq!(r.status, 404);
    app.get("/api/v1/assignments/0193a7c2-0000-7000-8000-000000000000").await.expect_error(404, "not_found");
}

async fn an_assignment_job_obeys_the_queue_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.assign_sync_max = 1;
        s.queue_limit = 3;
    })
    .await;
    app.seed_catalog().await;
    let fw = app.firmware("1.1.0", pseudo_random(1000, 5), true).await;
    let named = devices(&app, "q", 10).await;
    let started = app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": named})).await.expect(202);
    assert_eq!(finished(&app, &started).await.body["assigned"], 10);
    // the ten are one chunk, one transaction: the fourth pipeline job found the queue full
    let full = sessions_of(&app, &fw)
        .await
        .into_iter()
        .filter(|s| {
            s["state"] == "fail" && s["payload"]["reason"].as_str().is_some_and(|r| r.contains("queue is full"))
        })
        .count();
    assert_eq!(full, 7, "three fit the queue");
}
