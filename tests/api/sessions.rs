//! Firmware-update sessions: seed 003's client, target selection, every row of the
//! transition table and every conflict, and the pipeline's failure paths.

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, files_under, pseudo_random, seed_request, sha256_hex};

crate::on_both_backends!(
    seed_python_client_runs_unchanged,
    responses_have_exactly_the_seed_fields,
    request_picks_the_newest_and_validates,
    drafts_need_the_flag_and_the_right,
    ready_queued_processing_created_success,
    confirm_false_fails_and_conflicts_answer_409,
    procedure_without_confirm_step_ends_in_success,
    queue_full_fails_with_a_queueing_error,
    queue_timeout_fails_with_a_queueing_error,
    failing_pipeline_fails_the_session_with_a_reason,
    a_lost_worker_is_taken_over_after_its_lease,
    identical_requests_share_one_pipeline_output,
    admins_list_sessions_and_device_history,
    rights_on_sessions,
);

/// Runs `tests/clients/seed003_client.py` (Python `requests`, as in the seed).
async fn seed_python_client_runs_unchanged(backend: Backend) {
    let has_requests =
        Command::new("python3").args(["-c", "import requests"]).output().is_ok_and(|o| o.status.success());
    if !has_requests {
        assert!(
            std::env::var_os("DEVICEHUB_REQUIRE_PYTHON").is_none(),
            "python3 with `requests` is required here (DEVICEHUB_REQUIRE_PYTHON is set)"
        );
        eprintln!("skipped: python3 with the `requests` package is not installed");
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let image = pseudo_random(3 * 1024 * 1024 + 5, 11);
    let fw = app.firmware("1.0.0", image.clone(), true).await;

    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/seed003_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .current_dir(dir.path())
        .env("DEVICEHUB_URL", &app.base)
        .env("DEVICEHUB_TOKEN", ADMIN_TOKEN)
        .env("POLL_SECONDS", "0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the seed client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("Downloaded {} bytes.", image.len())), "{stdout}");
    assert!(stdout.contains(&format!("Expected total size: {} bytes", image.len())), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("success"), "{stdout}");
    assert_eq!(std::fs::read(dir.path().join("firmware_image.bin")).unwrap(), image);

    // the device twin knows what it runs now
    let devices = app.get("/api/v1/devices?device_id=my-device-id").await.expect(200);
    assert_eq!(devices.body["results"][0]["installed_version"], "1.0.0");
    assert_eq!(devices.body["results"][0]["installed_firmware"], fw);
}

async fn responses_have_exactly_the_seed_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = app.seed_catalog().await;
    let fw = app.firmware("1.0.0", vec![1; 100], true).await;
    let r = app.request_update(seed_request("0.1.0")).await.expect(201);
    let keys: BTreeSet<_> = r.body.as_object().unwrap().keys().cloned().collect();
    let seed: BTreeSet<String> = [
        "id",
        "create_time",
        "creator",
        "state",
        "finished",
        "expiration_time",
        "delivery_procedure",
        "current_firmware",
        "target_firmware",
        "device",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys, seed, "{}", r.body);
    assert_eq!(r.body["state"], "ready");
    assert_eq!(r.body["finished"], false);
    assert_eq!(r.body["creator"], "admin");
    assert_eq!(r.body["delivery_procedure"], cat.procedure);
    assert_eq!(r.body["target_firmware"], fw);
    assert!(r.body["current_firmware"].is_null());
    // RFC 3339 with an offset, ready expiring 15 minutes after creation (seed 003)
    let created = chrono::DateTime::parse_from_rfc3339(r.body["create_time"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(r.body["expiration_time"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 15 * 60);
    // the device twin was created
    let device = app.get(&format!("/api/v1/devices/{}", r.body["device"].as_str().unwrap())).await.expect(200);
    assert_eq!(device.body["device_id"], "my-device-id");
    assert_eq!(device.body["installed_version"], "0.1.0");
    assert_eq!(device.body["last_session"], r.body["id"]);
    assert!(device.body["last_seen"].is_string());

    // with the deliverable: payload with link, size and hashes
    let done = app.ready_deliverable("0.1.0").await;
    let payload = &done.body["payload"];
    assert!(payload["download_link"].as_str().unwrap().starts_with(&app.base));
    assert_eq!(payload["size"], 100);
    assert_eq!(payload["sha256"], sha256_hex(&[1; 100]));
    assert!(payload["md5"].is_string());
}

async fn request_picks_the_newest_and_validates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let v1 = app.firmware("1.0.0", vec![1], true).await;
    let v110 = app.firmware("1.10.0", vec![2], true).await;
    app.firmware("1.2.0", vec![3], true).await;
    app.firmware("2.0.0", vec![4], false).await; // a draft
    // released in another channel only: not a candidate
    app.post("/api/v1/channels", json!({"tid": "beta", "name": "beta", "product": "P1"})).await.expect(201);
    app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "3.0.0", "channels": ["beta"]}))
        .await
        .expect(201);

    let r = app.request_update(seed_request("0.1.0")).await.expect(201);
    assert_eq!(r.body["target_firmware"], v110, "1.10.0 is newer than 1.2.0 (semver, not text)");
    let r = app.request_update(seed_request("1.10.0")).await.expect(201);
    assert_eq!(r.body["state"], "up_to_date");
    assert_eq!(r.body["finished"], true);
    assert!(r.body["target_firmware"].is_null());
    assert_eq!(r.body["current_firmware"], v110);
    let r = app.request_update(seed_request("v1.10")).await.expect(201);
    assert_eq!(r.body["state"], "up_to_date", "lenient current version");

    // an explicit target, even a downgrade
    let mut body = seed_request("1.10.0");
    body["target_firmware_version"] = json!("1.0.0");
    let r = app.request_update(body.clone()).await.expect(201);
    assert_eq!(r.body["state"], "ready");
    assert_eq!(r.body["target_firmware"], v1);
    body["target_firmware_version"] = json!("9.9.9");
    app.request_update(body).await.expect_error(422, "unknown_reference");

    // without a channel the device twin's channel is used
    let mut body = seed_request("0.1.0");
    body.as_object_mut().unwrap().remove("current_channel");
    assert_eq!(app.request_update(body.clone()).await.expect(201).body["state"], "ready");
    body["device_id"] = json!("a-new-device");
    app.request_update(body).await.expect_error(400, "invalid");

    // ids work as well as handles
    let cat_model = app.get("/api/v1/models/CAFEBABE").await.id();
    let mut body = seed_request("0.1.0");
    body["model"] = json!(cat_model);
    app.request_update(body).await.expect(201);

    for (field, value, status, code) in [
        ("model", json!("NOPE"), 422, "unknown_reference"),
        ("delivery_procedure_tid", json!("nope"), 422, "unknown_reference"),
        ("delivery_method", json!("NOPE"), 422, "unknown_reference"),
        ("current_channel", json!("NOPE"), 422, "unknown_reference"),
        ("current_firmware_version", json!("banana"), 400, "invalid"),
        ("device_id", json!("white space"), 400, "invalid"),
        ("allow_draft_firmware", json!("yes"), 400, "invalid_body"),
    ] {
        let mut body = seed_request("0.1.0");
        body[field] = value;
        app.request_update(body).await.expect_error(status, code);
    }
    // a procedure of another delivery method
    app.post("/api/v1/delivery-methods", json!({"tid": "OTHER", "name": "other"})).await.expect(201);
    let mut body = seed_request("0.1.0");
    body["delivery_method"] = json!("OTHER");
    app.request_update(body).await.expect_error(422, "unknown_reference");
    let mut body = seed_request("0.1.0");
    body.as_object_mut().unwrap().remove("delivery_procedure_tid");
    body.as_object_mut().unwrap().remove("delivery_method");
    app.request_update(body).await.expect_error(400, "invalid");
    // unknown fields are ignored (devices send what they send)
    let mut body = seed_request("0.1.0");
    body["bootloader_build"] = json!("2024-01-01");
    app.request_update(body).await.expect(201);
    // malformed JSON and no model
    let r = app
        .client
        .post(app.url("/api/v1/firmware-update/request"))
        .header("Authorization", format!("Token {ADMIN_TOKEN}"))
        .header("Content-Type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    crate::helpers::Resp::from(r).await.expect_error(400, "invalid_json");
    app.request_update(json!({"device_id": "x"})).await.expect_error(400, "invalid_body");
}

async fn drafts_need_the_flag_and_the_right(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![1], true).await;
    let draft = app.firmware("1.1.0", vec![2], false).await;
    let device = app.user_with_role("bootloader", Some("device"), Some("P1")).await;
    let maintainer = app.user_with_role("qa", Some("maintainer"), Some("P1")).await;
    let mut body = seed_request("1.0.0");
    let r =
        app.call(Method::POST, "/api/v1/firmware-update/request", Some(&device), Some(body.clone())).await.expect(201);
    assert_eq!(r.body["state"], "up_to_date", "drafts are invisible without the flag");
    assert_eq!(r.body["creator"], "bootloader");
    body["allow_draft_firmware"] = json!(true);
    app.call(Method::POST, "/api/v1/firmware-update/request", Some(&device), Some(body.clone()))
        .await
        .expect_error(403, "forbidden");
    let r = app.call(Method::POST, "/api/v1/firmware-update/request", Some(&maintainer), Some(body)).await.expect(201);
    assert_eq!(r.body["target_firmware"], draft);
}

async fn ready_queued_processing_created_success(backend: Backend) {
    // no workers: the session waits in `queued`, where a test can look at it
    let app = TestApp::spawn_with(backend, |s| s.workers = 0).await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![7; 1000], true).await;
    let id = app.request_update(seed_request("0.1.0")).await.expect(201).id();

    assert_eq!(app.confirm_session(&id, true).await.expect_error(409, "session_state").body["state"], "ready");
    let queued = app.start_session(&id).await.expect(200);
    assert_eq!(queued.body["state"], "queued");
    assert!(queued.body.get("payload").is_none());
    assert_eq!(
        app.call(Method::POST, &format!("/api/v1/firmware-update/{id}/start/"), Some(ADMIN_TOKEN), None)
            .await
            .expect(200)
            .body["state"],
        "queued",
        "a repeated start is safe"
    );
    let r = app.confirm_session(&id, true).await.expect_error(409, "session_state");
    assert_eq!(r.body["state"], "queued");

    // a worker claims it: processing, then created (the procedure has a confirm step)
    let _workers = devicehub::jobs::spawn(&app.hub, 1);
    let created = app.wait_for_state(&id, &["created"]).await;
    assert_eq!(created.body["finished"], false);
    assert!(created.body["payload"]["download_link"].is_string());
    assert_eq!(app.start_session(&id).await.expect(200).body["state"], "created", "start after the fact is a repeat");
    let path = app.state_path(&id).await;
    assert_eq!(path, ["ready", "queued", "processing", "created"]);

    let success = app.confirm_session(&id, true).await.expect(200);
    assert_eq!(success.body["state"], "success");
    assert_eq!(success.body["finished"], true);
    assert_eq!(
        app.confirm_session(&id, true).await.expect(200).body["state"],
        "success",
        "the same confirm again is a repeat"
    );
    app.confirm_session(&id, false).await.expect_error(409, "session_state");
    assert_eq!(app.start_session(&id).await.expect(200).body["state"], "success");
    // confirm needs its body
    app.post(&format!("/api/v1/firmware-update/{id}/confirm"), json!({})).await.expect_error(400, "invalid_body");
    app.post(&format!("/api/v1/firmware-update/{id}/confirm"), json!({"success": "yes"}))
        .await
        .expect_error(400, "invalid_body");
    // unknown sessions
    app.session(&uuid::Uuid::new_v4().to_string()).await.expect_error(404, "not_found");
    app.session("not-a-uuid").await.expect_error(404, "not_found");
    app.start_session(&uuid::Uuid::new_v4().to_string()).await.expect_error(404, "not_found");
}

async fn confirm_false_fails_and_conflicts_answer_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![7; 10], true).await;
    let created = app.ready_deliverable("0.1.0").await;
    let id = created.id();
    let failed = app.confirm_session(&id, false).await.expect(200);
    assert_eq!(failed.body["state"], "fail");
    assert_eq!(failed.body["finished"], true);
    assert!(failed.body["payload"]["reason"].as_str().unwrap().contains("failed update"), "{}", failed.body);
    assert_eq!(app.confirm_session(&id, false).await.expect(200).body["state"], "fail", "repeat");
    app.confirm_session(&id, true).await.expect_error(409, "session_state");
    let r = app.start_session(&id).await.expect_error(409, "session_state");
    assert_eq!(r.body["state"], "fail");

    // up_to_date accepts neither start nor confirm
    let up = app.request_update(seed_request("1.0.0")).await.expect(201).id();
    assert_eq!(app.start_session(&up).await.expect_error(409, "session_state").body["state"], "up_to_date");
    app.confirm_session(&up, true).await.expect_error(409, "session_state");
    // nothing changed by the refusals
    assert_eq!(app.session(&up).await.body["state"], "up_to_date");
}

async fn procedure_without_confirm_step_ends_in_success(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.patch("/api/v1/delivery-procedures/dp-handle", json!({"confirm": false})).await.expect(200);
    app.firmware("1.0.0", vec![7; 10], true).await;
    let done = app.ready_deliverable("0.1.0").await;
    assert_eq!(done.body["state"], "success");
    assert!(done.body["payload"]["download_link"].is_string());
    let events = app.events(&done.id()).await;
    assert_eq!(events[0]["from_state"], "processing");
    assert_eq!(events[0]["to_state"], "success");
}

async fn queue_full_fails_with_a_queueing_error(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.workers = 0;
        s.queue_limit = 1;
    })
    .await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![1], true).await;
    let first = app.request_update(seed_request("0.1.0")).await.id();
    let second = app.request_update(seed_request("0.1.0")).await.id();
    assert_eq!(app.start_session(&first).await.expect(200).body["state"], "queued");
    let full = app.start_session(&second).await.expect(200);
    assert_eq!(full.body["state"], "fail");
    assert!(full.body["payload"]["reason"].as_str().unwrap().contains("queue is full"), "{}", full.body);
    let path = app.state_path(&second).await;
    assert_eq!(path, ["ready", "queued", "fail"], "the table's path: queued, then the queueing error");
    assert_eq!(app.session(&first).await.body["state"], "queued", "the first keeps its place");
}

async fn queue_timeout_fails_with_a_queueing_error(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.workers = 0).await;
    app.seed_catalog().await;
    app.patch("/api/v1/delivery-procedures/dp-handle", json!({"timeouts": {"queued": 1}})).await.expect(200);
    app.firmware("1.0.0", vec![1], true).await;
    let id = app.request_update(seed_request("0.1.0")).await.id();
    app.start_session(&id).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let failed = app.session(&id).await.expect(200);
    assert_eq!(failed.body["state"], "fail");
    assert!(failed.body["payload"]["reason"].as_str().unwrap().contains("queueing error"), "{}", failed.body);
    // and its job is gone: a worker started now has nothing to do
    assert!(devicehub::service::jobs::claim_next(&app.hub, "late").await.unwrap().is_none());
    assert_eq!(app.session(&id).await.body["state"], "fail");
}

async fn failing_pipeline_fails_the_session_with_a_reason(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.job_max_attempts = 2).await;
    app.seed_catalog().await;
    app.patch("/api/v1/delivery-procedures/dp-handle", json!({"steps": [{"type": "gzip"}]})).await.expect(200);
    app.firmware("1.0.0", vec![9; 5000], true).await;
    // the image vanishes from the store: every attempt fails
    for f in files_under(&app.env.objects_dir().join("images")) {
        std::fs::remove_file(f).unwrap();
    }
    let id = app.request_update(seed_request("0.1.0")).await.id();
    app.start_session(&id).await.expect(200);
    let failed = app.wait_for_state(&id, &["fail"]).await;
    assert!(failed.body["payload"]["reason"].as_str().unwrap().starts_with("processing error"), "{}", failed.body);
    let kinds = app.event_kinds(&id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "attempt_failed").count(), 1, "one retry before giving up: {kinds:?}");
    app.start_session(&id).await.expect_error(409, "session_state");
}

/// A worker that claimed the job and died (it never renews its lease): another worker
/// takes the job over once the lease runs out, and finishes it.
async fn a_lost_worker_is_taken_over_after_its_lease(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.workers = 0;
        s.job_lease_secs = 1;
    })
    .await;
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![5; 2048], true).await;
    let id = app.request_update(seed_request("0.1.0")).await.id();
    app.start_session(&id).await.expect(200);
    let ghost = devicehub::service::jobs::claim_next(&app.hub, "ghost").await.unwrap().expect("a job to claim");
    let devicehub::service::jobs::Task::Pipeline(ghost) = ghost else { panic!("a pipeline job") };
    assert_eq!(ghost.session_id, id);
    assert_eq!(app.session(&id).await.body["state"], "processing");
    // a real worker cannot take it while the ghost's lease lasts…
    assert!(devicehub::service::jobs::claim_next(&app.hub, "eager").await.unwrap().is_none());
    // …but does afterwards, and finishes
    let _workers = devicehub::jobs::spawn(&app.hub, 1);
    let done = app.wait_for_state(&id, &["created"]).await;
    assert_eq!(done.body["payload"]["size"], 2048);
    let events = app.events(&id).await;
    let takeover = events.iter().find(|e| e["kind"] == "takeover").expect("a takeover event");
    assert!(takeover["message"].as_str().unwrap().contains("attempt 2"), "{takeover}");
}

async fn identical_requests_share_one_pipeline_output(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.patch(
        "/api/v1/delivery-procedures/dp-handle",
        json!({"steps": [{"type": "gzip", "level": 1}, {"type": "manifest"}]}),
    )
    .await
    .expect(200);
    let image = pseudo_random(100_000, 8);
    app.firmware("1.0.0", image.clone(), true).await;
    let a = app.ready_deliverable("0.1.0").await;
    let b = app.ready_deliverable("0.1.0").await;
    assert_ne!(a.id(), b.id());
    assert_eq!(a.body["payload"]["sha256"], b.body["payload"]["sha256"]);
    assert_eq!(files_under(&app.env.objects_dir().join("artifacts")).len(), 1, "one output for both");
    let manifest = &a.body["payload"]["manifest"];
    assert_eq!(manifest["image_sha256"], sha256_hex(&image));
    assert_eq!(manifest["sha256"], a.body["payload"]["sha256"]);
    assert_eq!(manifest["version"], "1.0.0");
    assert_eq!(a.body["payload"]["filename"], "CAFEBABE-1.0.0.bin.gz");
    // the deliverable really is the gzip of the image
    let link = a.body["payload"]["download_link"].as_str().unwrap();
    let gz = app.client.get(link).send().await.unwrap().bytes().await.unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, image);
}

async fn admins_list_sessions_and_device_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = app.seed_catalog().await;
    app.firmware("1.0.0", vec![1], true).await;
    let ready = app.request_update(seed_request("0.1.0")).await.id();
    let up = app.request_update(seed_request("1.0.0")).await.id();
    let all = app.get("/api/v1/firmware-update/").await.expect(200);
    assert_eq!(all.body["count"], 2);
    assert_eq!(all.body["results"][0]["id"], up, "newest first");
    assert_eq!(all.body["results"][0]["expired"], false);
    assert_eq!(app.get("/api/v1/firmware-update?state=ready").await.body["results"][0]["id"], ready);
    assert_eq!(app.get(&format!("/api/v1/firmware-update?model={}", cat.model)).await.body["count"], 2);
    let device = app.session(&ready).await.body["device"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/api/v1/firmware-update?device={device}")).await.body["count"], 2);
    let history = app.get(&format!("/api/v1/devices/{device}/sessions")).await.expect(200);
    assert_eq!(history.body["count"], 2);
    app.get("/api/v1/firmware-update?state=sleeping").await.expect_error(400, "invalid");
    app.get("/api/v1/firmware-update?expired=maybe").await.expect_error(400, "invalid_query");
    app.get(&format!("/api/v1/devices/{}/sessions", uuid::Uuid::new_v4())).await.expect_error(404, "not_found");
}

async fn rights_on_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201);
    app.firmware("1.0.0", vec![1], true).await;
    let device = app.user_with_role("bootloader", Some("device"), Some("P1")).await;
    let other = app.user_with_role("elsewhere", Some("device"), Some("P2")).await;
    let viewer = app.user_with_role("watcher", Some("viewer"), Some("P1")).await;
    let post = |token: &str| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.call(Method::POST, "/api/v1/firmware-update/request", Some(&token), Some(seed_request("0.1.0"))).await
        }
    };
    let id = post(&device).await.expect(201).id();
    // a model of a product the caller does not see is as unknown as a missing one (issue 9)
    post(&other).await.expect_error(422, "unknown_reference");
    post(&viewer).await.expect_error(403, "forbidden");
    post("dh_wrong").await.expect_error(401, "unauthorized");
    app.call(Method::POST, "/api/v1/firmware-update/request", None, Some(seed_request("0.1.0")))
        .await
        .expect_error(401, "unauthorized");

    let path = format!("/api/v1/firmware-update/{id}");
    app.call(Method::GET, &path, Some(&device), None).await.expect(200);
    app.call(Method::GET, &path, Some(&viewer), None).await.expect(200);
    app.call(Method::GET, &path, Some(&other), None).await.expect_error(404, "not_found");
    app.call(Method::POST, &format!("{path}/start"), Some(&viewer), None).await.expect_error(403, "forbidden");
    app.call(Method::POST, &format!("{path}/start"), Some(&other), None).await.expect_error(404, "not_found");
    app.call(Method::POST, &format!("{path}/start"), Some(&device), None).await.expect(200);
    // a device user sees no admin list
    let listed = app.call(Method::GET, "/api/v1/firmware-update", Some(&device), None).await.expect(200);
    assert_eq!(listed.body["count"], 0);
}
