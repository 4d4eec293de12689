//! Integrity is re-checked (issue 9, defect 2): `devicehub scrub` re-hashes stored images and
//! pipeline outputs against their recorded SHA-256 and size. An object whose bytes changed on
//! disk is quarantined: every door answers `503 object_quarantined` for it instead of the
//! wrong bytes, the sessions relying on it fail with a reason, a deliverable is made anew for
//! the next session, a corrupted image blocks new sessions, and `/readyz` counts it.
//! (The background scrub and its durability across restarts: `process.rs`.)

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, files_under, pseudo_random, seed_request, sha256_hex};
use crate::integrity::gzip_catalog;

crate::on_both_backends!(
    the_scrub_command_quarantines_what_changed_on_disk,
    a_pipeline_never_prepares_from_a_changed_image,
    two_scrubbers_never_hash_one_object_twice
);

/// Runs `devicehub scrub` over the app's data; (exit code, stdout).
fn scrub(app: &TestApp) -> (Option<i32>, String) {
    let out = crate::process::command(&app.env).arg("scrub").output().expect("run devicehub scrub");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}\n{stderr}"))
}

/// Flips one byte in the middle of a stored file: same size, other bytes.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn the_one_file_under(dir: &Path) -> PathBuf {
    let files = files_under(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

async fn get(app: &TestApp, url: &str, auth: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = app.client.request(Method::GET, url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[track_caller]
fn quarantined(answer: (u16, Vec<u8>), what: &str) {
    let (status, body) = answer;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!((status, body["error"].as_str()), (503, Some("object_quarantined")), "{what}: {body}");
}

/// A session with this procedure for a device, started and prepared.
async fn prepared(app: &TestApp, device: &str, procedure: &str) -> Resp {
    let mut body = seed_request("0.1.0");
    body["device_id"] = json!(device);
    body["delivery_procedure_tid"] = json!(procedure);
    let id = app.request_update(body).await.expect(201).id();
    app.start_session(&id).await.expect(200);
    app.wait_for_state(&id, &["created"]).await
}

async fn the_scrub_command_quarantines_what_changed_on_disk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let image = pseudo_random(1024 * 1024 + 7, 31);
    let fw = gzip_catalog(&app, image.clone()).await;

    // a device with a gzip deliverable; one whose deliverable is the image itself; and a
    // hawkBit device that installed the gzip deliverable (its artifact stays downloadable)
    let gzipped = prepared(&app, "dev-gzip", "dp-gzip").await;
    let plain = prepared(&app, "dev-plain", "dp-handle").await;
    let ddi_device = app
        .post(
            "/api/v1/devices",
            json!({"device_id": "ddi-1", "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "0.1.0"}),
        )
        .await
        .expect(201);
    let ddi_auth = format!("TargetToken {}", ddi_device.body["target_token"].as_str().unwrap());
    let assigned = app
        .post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["ddi-1"], "delivery_procedure": "dp-gzip"}))
        .await
        .expect(201);
    let action = assigned.body["sessions"][0]["action"]["id"].as_str().unwrap().to_owned();
    app.wait_for_state(assigned.body["sessions"][0]["id"].as_str().unwrap(), &["created"]).await;
    let ddi = |tail: String| app.url(&format!("/P1/controller/v1/ddi-1{tail}"));
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let r = app
        .client
        .post(ddi(format!("/deploymentBase/{action}/feedback")))
        .header("Authorization", &ddi_auth)
        .json(&closed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let base = app.client.get(ddi(format!("/installedBase/{action}"))).header("Authorization", &ddi_auth);
    let base: Value = base.send().await.unwrap().json().await.unwrap();
    let ddi_artifact =
        base["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &ddi_artifact, Some(&ddi_auth)).await.0, 200);

    // nothing changed: the scrub finds everything in order
    let (code, said) = scrub(&app);
    assert_eq!(code, Some(0), "{said}");

    // the gzip deliverable changes on disk (bit rot, an operator's mistake)
    let output = the_one_file_under(&app.env.objects_dir().join("artifacts"));
    flip_a_byte(&output);
    let (code, said) = scrub(&app);
    assert_eq!(code, Some(1), "a scrub that quarantines exits 1: {said}");
    assert!(said.contains("quarantined") && said.contains("artifacts/"), "{said}");

    // no door serves it: the session link, the DDI artifact
    let link = gzipped.body["payload"]["download_link"].as_str().unwrap();
    quarantined(get(&app, link, None).await, "the session download");
    quarantined(get(&app, &ddi_artifact, Some(&ddi_auth)).await, "the DDI artifact");
    // the session relying on it failed, saying why
    let s = app.session(&gzipped.id()).await.expect(200);
    assert_eq!(s.body["state"], "fail", "{}", s.body);
    let reason = s.body["payload"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("quarantined") && reason.contains(gzipped.body["payload"]["sha256"].as_str().unwrap()),
        "{reason}"
    );
    // the image and its plain deliverable are untouched
    assert_eq!(app.session(&plain.id()).await.body["state"], "created");
    let plain_link = plain.body["payload"]["download_link"].as_str().unwrap();
    assert!(get(&app, plain_link, None).await == (200, image.clone()));
    // readiness reports it, and stays ready (the other objects are served)
    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(ready.body["integrity"]["quarantined"], 1, "{}", ready.body);
    assert!(ready.body["integrity"]["last_scrub"].is_string(), "{}", ready.body);
    // the next session for the same firmware gets a deliverable made anew, and right
    let again = prepared(&app, "dev-gzip-2", "dp-gzip").await;
    let (status, bytes) = get(&app, again.body["payload"]["download_link"].as_str().unwrap(), None).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&bytes), again.body["payload"]["sha256"].as_str().unwrap());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped).unwrap();
    assert!(unzipped == image, "the new deliverable is not the gzip of the image");

    // now the image itself changes: cut short
    let stored = the_one_file_under(&app.env.objects_dir().join("images"));
    let bytes = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, &bytes[..bytes.len() - 1000]).unwrap();
    let (code, said) = scrub(&app);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("images/"), "{said}");

    // the admin download and the plain deliverable (the image itself) are refused
    let admin = format!("Token {}", crate::helpers::ADMIN_TOKEN);
    quarantined(get(&app, &app.url(&format!("/api/v1/firmware/{fw}/image")), Some(&admin)).await, "the image");
    quarantined(get(&app, plain_link, None).await, "the plain deliverable");
    let s = app.session(&plain.id()).await.expect(200);
    assert_eq!(s.body["state"], "fail", "{}", s.body);
    // a corrupted image cannot be made again: no new session, no assignment for it
    let mut body = seed_request("0.1.0");
    body["device_id"] = json!("dev-new");
    app.request_update(body).await.expect_error(503, "object_quarantined");
    app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["ddi-1"]}))
        .await
        .expect_error(503, "object_quarantined");
    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(ready.body["integrity"]["quarantined"], 2, "{}", ready.body);
}

/// Between two scrubs, a pipeline step reads the image it compresses and checks it on the way:
/// a changed image fails the session, instead of becoming a deliverable whose digests are
/// those of the wrong bytes.
async fn a_pipeline_never_prepares_from_a_changed_image(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    gzip_catalog(&app, pseudo_random(300_000, 32)).await;
    flip_a_byte(&the_one_file_under(&app.env.objects_dir().join("images")));
    let mut body = seed_request("0.1.0");
    body["delivery_procedure_tid"] = json!("dp-gzip");
    let id = app.request_update(body).await.expect(201).id();
    app.start_session(&id).await.expect(200);
    let done = app.wait_for_state(&id, &["fail", "created"]).await;
    assert_eq!(done.body["state"], "fail", "a deliverable was made from a changed image: {}", done.body);
    let reason = done.body["payload"]["reason"].as_str().unwrap();
    assert!(reason.contains("no longer match"), "{reason}");
}

/// Instances share the scrub: each claims one object at a time with a lease, so two scrubbers
/// running at once check every object exactly once between them.
async fn two_scrubbers_never_hash_one_object_twice(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.scrub_interval_secs = 0).await;
    app.seed_catalog().await;
    const IMAGES: usize = 8;
    for n in 0..IMAGES {
        app.firmware(&format!("1.0.{n}"), pseudo_random(128 * 1024, n as u64), false).await;
    }
    // 128 KiB at 1 MiB/s: an eighth of a second each, so the two overlap
    let now = devicehub::time::now();
    let (a, b) = tokio::join!(
        devicehub::service::scrub::pass(&app.hub, "scrubber-a", now, 1024 * 1024),
        devicehub::service::scrub::pass(&app.hub, "scrubber-b", now, 1024 * 1024)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.checked + b.checked, IMAGES, "a: {a:?}, b: {b:?}");
    assert!(a.checked > 0 && b.checked > 0, "one scrubber did all the work: a: {a:?}, b: {b:?}");
    assert!(a.quarantined.is_empty() && b.quarantined.is_empty());
    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert!(ready.body["integrity"]["last_scrub"].is_string(), "{}", ready.body);
}
