//! Delivery procedures that do real work: `compress`, `delta`, `encrypt`, `sign`, what a
//! device gets of them (payload, DDI artifacts), and `devicehub verify` rebuilding the exact
//! target image — or naming the check that failed. The checks against the stock tools a
//! device uses (`zstd --patch-from`, `minisign -V`) run where the tools are installed and
//! must run in CI (`DEVICEHUB_REQUIRE_TOOLS=1`).

use std::io::Read;
use std::path::Path;

use age::secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, files_under, pseudo_random, seed_request, sha256_hex};

crate::on_both_backends!(
    bad_steps_are_refused_with_their_index_and_reason,
    compress_with_zstd_and_gzip_round_trips,
    a_delta_from_the_current_version_rebuilds_the_target,
    without_a_usable_base_the_full_image_is_delivered_and_the_payload_says_why,
    per_device_encryption_shares_the_delta_and_needs_the_devices_key,
    identical_sessions_started_at_once_run_the_steps_once,
);

async fn procedure(app: &TestApp, steps: Value) {
    app.patch("/api/v1/delivery-procedures/dp-handle", json!({"steps": steps})).await.expect(200);
}

async fn download(app: &TestApp, session: &Resp) -> Vec<u8> {
    let link = session.body["payload"]["download_link"].as_str().expect("a download link");
    app.client.get(link).send().await.unwrap().bytes().await.unwrap().to_vec()
}

/// A request from `device` running `current`.
async fn deliverable_for(app: &TestApp, device: &str, current: Option<&str>) -> Resp {
    let mut body = seed_request(current.unwrap_or(""));
    body["device_id"] = json!(device);
    if current.is_none() {
        body.as_object_mut().unwrap().remove("current_firmware_version");
    }
    let id = app.request_update(body).await.expect(201).id();
    app.start_session(&id).await.expect(200);
    app.wait_for_state(&id, &["created", "success", "fail"]).await
}

/// A firmware image and a next release of it: the same bytes with 1 % of 4 KiB blocks changed.
fn image_pair(len: usize) -> (Vec<u8>, Vec<u8>) {
    let old = pseudo_random(len, 7);
    let mut new = old.clone();
    let noise = pseudo_random(len, 8);
    for block in (0..len / 4096).step_by(100) {
        let at = block * 4096;
        new[at..at + 4096].copy_from_slice(&noise[at..at + 4096]);
    }
    (old, new)
}

fn unzstd(bytes: &[u8], prefix: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut decoder = match prefix {
        Some(p) => zstd::stream::read::Decoder::with_ref_prefix(std::io::BufReader::new(bytes), p).unwrap(),
        None => zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(bytes)).unwrap(),
    };
    decoder.window_log_max(31).unwrap();
    decoder.read_to_end(&mut out).unwrap();
    out
}

async fn bad_steps_are_refused_with_their_index_and_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    for (steps, says) in [
        (json!([{"type": "compress", "level": 42}]), "steps[0] (compress): level must be 1 to 19"),
        (json!([{"type": "image"}, {"type": "compress", "window_log": 40}]), "steps[1] (compress): window_log"),
        (json!([{"type": "gzip"}, {"type": "delta"}]), "steps[1] (delta): delta must come first"),
        (json!([{"type": "encrypt", "recipient": "age1nope"}]), "steps[0] (encrypt)"),
        (json!([{"type": "compress", "levle": 3}]), "steps[0] (compress): unknown field"),
    ] {
        let r = app.patch("/api/v1/delivery-procedures/dp-handle", json!({"steps": steps})).await;
        let r = r.expect_error(422, "invalid");
        let message = r.body["detail"].as_str().unwrap();
        assert!(message.starts_with(says), "{message:?} should start with {says:?}");
    }
    // the same on create
    let r = app
        .post(
            "/api/v1/delivery-procedures",
            json!({"tid": "dp2", "name": "n", "delivery_method": "DEADBEEF", "steps": [{"type": "delta", "max_ratio": 3}]}),
        )
        .await
        .expect_error(422, "invalid");
    assert!(r.body["detail"].as_str().unwrap().contains("max_ratio"), "{}", r.body);
    // `gzip` keeps its meaning, and the new kinds are stored as given (defaults filled in)
    procedure(&app, json!([{"type": "gzip"}, {"type": "compress", "long": true}])).await;
    let p = app.get("/api/v1/delivery-procedures/dp-handle").await.expect(200);
    assert_eq!(
        p.body["steps"],
        json!([{"type": "gzip", "level": 6}, {"type": "compress", "algorithm": "zstd", "long": true}])
    );
}

async fn compress_with_zstd_and_gzip_round_trips(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let (_, image) = image_pair(600_000);
    app.firmware("1.0.0", image.clone(), true).await;

    procedure(&app, json!([{"type": "compress", "level": 19, "long": true, "window_log": 20}])).await;
    let zst = app.ready_deliverable("0.1.0").await;
    assert_eq!(zst.body["payload"]["filename"], "CAFEBABE-1.0.0.bin.zst");
    assert_eq!(zst.body["payload"]["compression"], json!({"algorithm": "zstd", "level": 19, "window_log": 20}));
    let bytes = download(&app, &zst).await;
    assert_eq!(sha256_hex(&bytes), zst.body["payload"]["sha256"].as_str().unwrap());
    assert_eq!(unzstd(&bytes, None), image);

    procedure(&app, json!([{"type": "compress", "algorithm": "gzip", "level": 1}])).await;
    let gz = app.ready_deliverable("0.1.0").await;
    assert_eq!(gz.body["payload"]["filename"], "CAFEBABE-1.0.0.bin.gz");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&download(&app, &gz).await[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, image);
}

async fn a_delta_from_the_current_version_rebuilds_the_target(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let (old, new) = image_pair(1_000_000);
    app.firmware("1.0.0", old.clone(), true).await;
    app.firmware("1.1.0", new.clone(), true).await;
    procedure(&app, json!([{"type": "delta"}])).await;

    let s = deliverable_for(&app, "dev-a", Some("1.0.0")).await;
    let delta = &s.body["payload"]["delta"];
    assert_eq!(delta["applied"], true, "{}", s.body);
    assert_eq!(delta["base_version"], "1.0.0");
    assert_eq!(delta["format"], "zstd-patch-from");
    assert_eq!(delta["base_sha256"], sha256_hex(&old));
    assert_eq!(s.body["payload"]["filename"], "CAFEBABE-1.1.0.bin.zstpatch");
    let patch = download(&app, &s).await;
    assert!(patch.len() < new.len() / 20, "1 % changed: the patch ({} bytes) is small", patch.len());
    assert_eq!(unzstd(&patch, Some(&old)), new);

    // the device's twin now records 1.0.0 as installed: a request that names no version
    // patches from it too
    let again = deliverable_for(&app, "dev-a", None).await;
    assert_eq!(again.body["payload"]["delta"]["base_version"], "1.0.0", "{}", again.body);
    assert_eq!(again.body["payload"]["sha256"], s.body["payload"]["sha256"], "one output, reused");
}

async fn without_a_usable_base_the_full_image_is_delivered_and_the_payload_says_why(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let unrelated = pseudo_random(200_000, 1);
    let target = pseudo_random(200_000, 2);
    app.firmware("1.0.0", unrelated, true).await;
    app.firmware("1.1.0", target.clone(), true).await;
    procedure(&app, json!([{"type": "delta", "max_ratio": 0.5}, {"type": "compress", "level": 1}])).await;

    for (device, current, reason) in [
        ("dev-unknown", None, "the device's current firmware version is unknown"),
        ("dev-old", Some("0.9.0"), "no stored image for the current version 0.9.0"),
        ("dev-unrelated", Some("1.0.0"), "is not smaller than 0.5 × the image"),
    ] {
        let s = deliverable_for(&app, device, current).await;
        let delta = &s.body["payload"]["delta"];
        assert_eq!(delta["applied"], false, "{}", s.body);
        assert_eq!(delta["base_version"], current.map_or(Value::Null, |v| json!(v)));
        assert!(delta["reason"].as_str().unwrap().contains(reason), "{delta}");
        assert_eq!(s.body["payload"]["filename"], "CAFEBABE-1.1.0.bin.zst", "the full image, compressed");
        assert_eq!(unzstd(&download(&app, &s).await, None), target);
    }
}

/// An age identity file's text and its recipient.
fn age_identity() -> (String, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    (format!("# a device's key\n{}\n", identity.to_string().expose_secret()), recipient)
}

fn decrypt(bytes: &[u8], identity_file: &str) -> Vec<u8> {
    let identity: age::x25519::Identity =
        identity_file.lines().find(|l| l.starts_with("AGE-")).unwrap().parse().unwrap();
    let decryptor = age::Decryptor::new(bytes).unwrap();
    let mut out = Vec::new();
    decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap().read_to_end(&mut out).unwrap();
    out
}

async fn per_device_encryption_shares_the_delta_and_needs_the_devices_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let (old, new) = image_pair(500_000);
    app.firmware("1.0.0", old.clone(), true).await;
    app.firmware("1.1.0", new.clone(), true).await;
    procedure(&app, json!([{"type": "delta"}, {"type": "encrypt"}])).await;

    // devices get their public keys through the admin API; a bad one is refused
    let mut keys = Vec::new();
    for device in ["dev-1", "dev-2", "dev-3"] {
        let id = app
            .post("/api/v1/devices", json!({"device_id": device, "model": "CAFEBABE", "channel": "BAADFOOD"}))
            .await
            .expect(201)
            .id();
        let r = app.patch(&format!("/api/v1/devices/{id}"), json!({"age_recipient": "age1notakey"})).await;
        r.expect_error(400, "invalid");
        let (identity, recipient) = age_identity();
        let r = app.patch(&format!("/api/v1/devices/{id}"), json!({"age_recipient": recipient})).await.expect(200);
        assert_eq!(r.body["age_recipient"], recipient.as_str());
        keys.push(identity);
    }
    let mut digests = Vec::new();
    for (device, identity) in ["dev-1", "dev-2", "dev-3"].iter().zip(&keys) {
        let s = deliverable_for(&app, device, Some("1.0.0")).await;
        assert_eq!(s.body["state"], "created", "{}", s.body);
        assert_eq!(s.body["payload"]["filename"], "CAFEBABE-1.1.0.bin.zstpatch.age");
        let patch = decrypt(&download(&app, &s).await, identity);
        assert_eq!(unzstd(&patch, Some(&old)), new);
        digests.push(s.body["payload"]["sha256"].as_str().unwrap().to_owned());
    }
    digests.dedup();
    assert_eq!(digests.len(), 3, "each device its own encryption");
    // one delta (made once, kept for the others) and three encryptions of it
    let outputs = files_under(&app.env.objects_dir().join("artifacts"));
    assert_eq!(outputs.len(), 4, "{outputs:?}");
    let events: Vec<String> = app.get("/api/v1/firmware-update/").await.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 3);

    // a device without a key: the session fails, and the reason names the step
    let r = app.post("/api/v1/devices", json!({"device_id": "dev-nokey", "model": "CAFEBABE", "channel": "BAADFOOD"}));
    r.await.expect(201);
    let s = deliverable_for(&app, "dev-nokey", Some("1.0.0")).await;
    assert_eq!(s.body["state"], "fail");
    let reason = s.body["payload"]["reason"].as_str().unwrap();
    assert!(reason.contains("step 1 (encrypt)") && reason.contains("no age_recipient"), "{reason}");
}

/// Single flight: 200 sessions for the same (model, base, target, procedure), started at
/// once, served by two workers in two server instances on one database: each step runs
/// exactly once, and every session gets the same deliverable.
async fn identical_sessions_started_at_once_run_the_steps_once(backend: Backend) {
    const SESSIONS: usize = 200;
    let app = TestApp::spawn_with(backend, |s| s.workers = 1).await;
    let mut other = app.env.settings();
    other.workers = 1;
    let second = devicehub::startup::Application::build(other).await.expect("a second instance");
    let second_handle = second.handle();
    tokio::spawn(second.run_until_stopped());

    app.seed_catalog().await;
    let (old, new) = image_pair(3_000_000);
    app.firmware("1.0.0", old, true).await;
    app.firmware("1.1.0", new.clone(), true).await;
    procedure(&app, json!([{"type": "delta"}, {"type": "compress", "level": 1}])).await;
    let mut ids = Vec::new();
    for i in 0..SESSIONS {
        let mut body = seed_request("1.0.0");
        body["device_id"] = json!(format!("flight-{i}"));
        ids.push(app.request_update(body).await.expect(201).id());
    }
    let starts = ids.iter().map(|id| app.start_session(id));
    for started in futures_util::future::join_all(starts).await {
        started.expect(200);
    }
    let mut digests = std::collections::BTreeSet::new();
    for id in &ids {
        let s = app.wait_for_state(id, &["created"]).await;
        digests.insert(s.body["payload"]["sha256"].as_str().unwrap().to_owned());
    }
    assert_eq!(digests.len(), 1, "one deliverable for all");
    let target = sha256_hex(&new);
    assert_eq!(devicehub::pipeline::step_runs(&target, "delta"), 1, "the delta was made once");
    assert_eq!(devicehub::pipeline::step_runs(&target, "compress"), 1, "and compressed once");
    second_handle.stop(true).await;
}

#[allow(dead_code)]
fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
