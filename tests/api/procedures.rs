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
    outputs_no_live_session_uses_are_removed_after_the_grace_period,
    signing_keys_are_made_or_imported_by_admins_and_never_shown,
    every_step_and_the_full_chain_verify_back_to_the_target,
    tampering_and_wrong_keys_each_fail_with_their_own_message,
    ddi_lists_the_signature_and_manifest_as_artifacts,
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
fn image_pair(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let old = pseudo_random(len, seed);
    let mut new = old.clone();
    let noise = pseudo_random(len, seed + 1);
    for block in (0..len / 4096).step_by(100) {
        let at = block * 4096;
        new[at..at + 4096].copy_from_slice(&noise[at..at + 4096]);
    }
    (old, new)
}

/// The seed catalog with releases 1.0.0 and 1.1.0 of [`image_pair`]; their images. The
/// images differ per backend, so the step counters (per target image) of the SQLite and the
/// PostgreSQL half of a test never add up when both run in one process.
async fn two_releases(app: &TestApp, len: usize) -> (Vec<u8>, Vec<u8>) {
    app.seed_catalog().await;
    let (old, new) = image_pair(len, if app.env.backend == Backend::Sqlite { 7 } else { 70 });
    app.firmware("1.0.0", old.clone(), true).await;
    app.firmware("1.1.0", new.clone(), true).await;
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
    let (_, image) = image_pair(600_000, 5);
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
    let (old, new) = two_releases(&app, 1_000_000).await;
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
    let (old, new) = two_releases(&app, 500_000).await;
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

    let (_, new) = two_releases(&app, 3_000_000).await;
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

/// The shared delta is referenced by no session (each device has its own encryption of it):
/// once past the grace period the sweep removes it, and keeps every live deliverable.
async fn outputs_no_live_session_uses_are_removed_after_the_grace_period(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.orphan_grace_secs = 0).await;
    let (old, new) = two_releases(&app, 200_000).await;
    procedure(&app, json!([{"type": "delta"}, {"type": "encrypt"}])).await;
    let (identity, recipient) = age_identity();
    let device = json!({"device_id": "dev-gc", "model": "CAFEBABE", "channel": "BAADFOOD", "age_recipient": recipient});
    app.post("/api/v1/devices", device).await.expect(201);
    let s = deliverable_for(&app, "dev-gc", Some("1.0.0")).await;
    let artifacts = app.env.objects_dir().join("artifacts");
    assert_eq!(files_under(&artifacts).len(), 2, "the delta and its encryption");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let swept = devicehub::service::orphans::sweep(&app.hub).await.unwrap();
    assert_eq!(swept.outputs, 1, "{swept:?}");
    assert_eq!(files_under(&artifacts).len(), 1, "the live deliverable stays");
    let patch = decrypt(&download(&app, &s).await, &identity);
    assert_eq!(unzstd(&patch, Some(&old)), new);
    // a later session makes the delta again
    let again = deliverable_for(&app, "dev-gc", Some("1.0.0")).await;
    assert_eq!(again.body["state"], "created", "{}", again.body);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A new signing key: its id, and its minisign public key file's text.
async fn signing_key(app: &TestApp, name: &str) -> (String, String) {
    let k = app.post("/api/v1/signing-keys", json!({"name": name})).await.expect(201);
    (k.id(), k.body["public_key"].as_str().unwrap().to_owned())
}

/// What a device has after a session: the deliverable, its signature and manifest, on disk.
struct Received {
    dir: tempfile::TempDir,
    deliverable: std::path::PathBuf,
    manifest: Value,
}

async fn receive(app: &TestApp, session: &Resp) -> Received {
    let payload = &session.body["payload"];
    let dir = tempfile::tempdir().unwrap();
    let name = payload["filename"].as_str().unwrap();
    let deliverable = write(dir.path(), name, &download(app, session).await);
    let signature = payload["signature"].as_str().expect("a signature in the payload");
    let manifest = payload["signed_manifest"].as_str().expect("a manifest in the payload");
    write(dir.path(), &format!("{name}.minisig"), signature.as_bytes());
    write(dir.path(), &format!("{name}.manifest.json"), manifest.as_bytes());
    Received { dir, deliverable, manifest: serde_json::from_str(manifest).unwrap() }
}

/// `devicehub verify`, as a device would run it: its exit status and what it printed.
fn verify(r: &Received, public_key: &str, identity: Option<&str>, base: Option<&[u8]>) -> (bool, String, Vec<u8>) {
    let out = r.dir.path().join("target.bin");
    let _ = std::fs::remove_file(&out);
    let key = write(r.dir.path(), "key.pub", public_key.as_bytes());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devicehub"));
    cmd.arg("verify").arg(&r.deliverable).arg("-P").arg(&key).arg("-o").arg(&out);
    if let Some(identity) = identity {
        cmd.arg("--identity").arg(write(r.dir.path(), "identity.txt", identity.as_bytes()));
    }
    if let Some(base) = base {
        cmd.arg("--base").arg(write(r.dir.path(), "base.bin", base));
    }
    let done = cmd.output().expect("run devicehub verify");
    let said = format!("{}{}", String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
    (done.status.success(), said, std::fs::read(&out).unwrap_or_default())
}

async fn signing_keys_are_made_or_imported_by_admins_and_never_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = app.seed_catalog().await;
    let made = app.post("/api/v1/signing-keys", json!({"name": "release"})).await.expect(201);
    assert!(made.body["public_key"].as_str().unwrap().starts_with("untrusted comment:"), "{}", made.body);
    assert_eq!(made.body["key_id"].as_str().unwrap().len(), 16);
    // an imported minisign key (password-protected, as `minisign -G` makes them)
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some("pass phrase".into())).unwrap();
    let secret = pair.sk.to_box(None).unwrap().to_string();
    let public = pair.pk.to_box().unwrap().to_string();
    app.post("/api/v1/signing-keys", json!({"name": "imported", "secret_key": secret}))
        .await
        .expect_error(400, "invalid");
    let imported = app
        .post("/api/v1/signing-keys", json!({"name": "imported", "secret_key": secret, "password": "pass phrase"}))
        .await
        .expect(201);
    assert_eq!(imported.body["public_key"].as_str().unwrap().lines().nth(1), public.lines().nth(1));
    app.post("/api/v1/signing-keys", json!({"name": "release"})).await.expect_error(409, "already_exists");
    // no answer carries a secret; the list needs a grant, the public keys nothing
    let listed = app.get("/api/v1/signing-keys").await.expect(200);
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    for text in [made.body.to_string(), imported.body.to_string(), listed.body.to_string()] {
        assert!(!text.to_lowercase().contains("secret"), "{text}");
    }
    let public_list = app.client.get(app.url("/api/v1/public-keys")).send().await.unwrap();
    assert_eq!(public_list.status(), 200);
    let key_id = made.body["key_id"].as_str().unwrap();
    let pub_file = app.client.get(app.url(&format!("/api/v1/public-keys/{key_id}"))).send().await.unwrap();
    assert_eq!(pub_file.text().await.unwrap(), made.body["public_key"].as_str().unwrap());
    // only global admins make keys
    let viewer = app.user_with_role("viewer", Some("viewer"), Some(&cat.product)).await;
    let r = app.call(reqwest::Method::POST, "/api/v1/signing-keys", Some(&viewer), Some(json!({"name": "mine"}))).await;
    r.expect_error(403, "forbidden");
    // the database holds the secret sealed: its text appears nowhere in it
    let id = made.id();
    let sealed = app
        .hub
        .db
        .run(move |conn| Ok(devicehub::db::signing_key::find(conn, &id)?.unwrap().secret_sealed))
        .await
        .unwrap();
    assert!(sealed.starts_with("dh1:"), "{sealed}");
    // a procedure may name only a key that exists
    let r = app.patch(
        "/api/v1/delivery-procedures/dp-handle",
        json!({"steps": [{"type": "sign", "key": uuid::Uuid::new_v4()}]}),
    );
    r.await.expect_error(422, "unknown_reference");
}

async fn every_step_and_the_full_chain_verify_back_to_the_target(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let (old, new) = image_pair(400_000, 9);
    let target_id = {
        app.firmware("1.0.0", old.clone(), true).await;
        app.firmware("1.1.0", new.clone(), true).await
    };
    let (key, public) = signing_key(&app, "release").await;
    let (identity, recipient) = age_identity();
    let device = app
        .post(
            "/api/v1/devices",
            json!({"device_id": "dev-v", "model": "CAFEBABE", "channel": "BAADFOOD", "age_recipient": recipient}),
        )
        .await
        .expect(201);
    assert_eq!(device.body["age_recipient"], recipient.as_str());
    let sign = json!({"type": "sign", "key": key});
    let (model_identity, model_recipient) = age_identity();
    let cases = [
        (json!([sign]), None, false),
        (json!([{"type": "compress", "level": 9, "long": true}, sign]), None, false),
        (json!([{"type": "gzip", "level": 1}, sign]), None, false),
        (json!([{"type": "delta"}, sign]), None, true),
        (json!([{"type": "encrypt", "recipient": model_recipient}, sign]), Some(model_identity.as_str()), false),
        // the full chain, per device
        (
            json!([{"type": "delta"}, {"type": "compress", "level": 3}, {"type": "encrypt"}, sign]),
            Some(identity.as_str()),
            true,
        ),
    ];
    for (steps, identity, delta) in cases {
        procedure(&app, steps.clone()).await;
        let s = deliverable_for(&app, "dev-v", Some("1.0.0")).await;
        assert_eq!(s.body["state"], "created", "{steps}: {}", s.body);
        let received = receive(&app, &s).await;
        let (ok, said, rebuilt) = verify(&received, &public, identity, delta.then_some(&old[..]));
        assert!(ok, "{steps}: {said}");
        assert!(said.contains("verified: CAFEBABE 1.1.0"), "{said}");
        assert!(rebuilt == new, "{steps}: the exact target bytes");
        let m = &received.manifest;
        assert_eq!(m["firmware_id"], target_id.as_str());
        assert_eq!(m["model"], "CAFEBABE");
        assert_eq!(m["version"], "1.1.0");
        assert_eq!(m["target"]["sha256"], sha256_hex(&new));
        assert_eq!(m["deliverable"]["sha256"], s.body["payload"]["sha256"]);
        assert_eq!(m["deliverable"]["size"], s.body["payload"]["size"]);
        assert_eq!(m["base_version"], if delta { json!("1.0.0") } else { Value::Null });
        let per_device =
            steps.as_array().unwrap().iter().any(|s| s["type"] == "encrypt" && s.get("recipient").is_none());
        assert_eq!(m["device"], if per_device { json!("dev-v") } else { Value::Null }, "{m}");
        let applied: Vec<&str> = m["steps"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
        let configured: Vec<&str> =
            steps.as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).filter(|t| *t != "sign").collect();
        let configured: Vec<&str> = configured.into_iter().map(|t| if t == "gzip" { "compress" } else { t }).collect();
        assert_eq!(applied, configured, "{m}");
    }
}

async fn tampering_and_wrong_keys_each_fail_with_their_own_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (old, new) = two_releases(&app, 300_000).await;
    let (key, public) = signing_key(&app, "release").await;
    let (_, other_public) = signing_key(&app, "other").await;
    let (identity, recipient) = age_identity();
    let (wrong_identity, _) = age_identity();
    app.post(
        "/api/v1/devices",
        json!({"device_id": "dev-t", "model": "CAFEBABE", "channel": "BAADFOOD", "age_recipient": recipient}),
    )
    .await
    .expect(201);
    procedure(
        &app,
        json!([{"type": "delta"}, {"type": "compress"}, {"type": "encrypt"}, {"type": "sign", "key": key}]),
    )
    .await;
    let s = deliverable_for(&app, "dev-t", Some("1.0.0")).await;
    let r = receive(&app, &s).await;
    let good = std::fs::read(&r.deliverable).unwrap();
    let manifest_path =
        r.dir.path().join(format!("{}.manifest.json", r.deliverable.file_name().unwrap().to_str().unwrap()));
    let good_manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(verify(&r, &public, Some(&identity), Some(&old)).0, "the untouched deliverable verifies");

    let fails = |(ok, said, out): (bool, String, Vec<u8>), says: &str| {
        assert!(!ok, "should fail with {says:?}");
        assert!(said.contains(says), "{said:?} should say {says:?}");
        assert!(out.is_empty(), "nothing is written when a check fails");
    };
    // a changed deliverable
    let mut tampered = good.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(&r.deliverable, &tampered).unwrap();
    fails(verify(&r, &public, Some(&identity), Some(&old)), "signature: the deliverable does not match its signature");
    std::fs::write(&r.deliverable, &good).unwrap();
    // a changed manifest
    std::fs::write(&manifest_path, good_manifest.replace("1.1.0", "9.9.9")).unwrap();
    fails(verify(&r, &public, Some(&identity), Some(&old)), "manifest: its SHA-256");
    std::fs::write(&manifest_path, &good_manifest).unwrap();
    // another key
    fails(verify(&r, &other_public, Some(&identity), Some(&old)), "(wrong public key)");
    // another device's identity
    fails(verify(&r, &public, Some(&wrong_identity), Some(&old)), "wrong identity");
    // another base
    fails(verify(&r, &public, Some(&identity), Some(&new)), "delta: the base image");
    // and with everything right again, it verifies
    assert!(verify(&r, &public, Some(&identity), Some(&old)).0);
}

async fn ddi_lists_the_signature_and_manifest_as_artifacts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let image = pseudo_random(100_000, 3);
    let fw = app.firmware("1.1.0", image.clone(), true).await;
    let (key, public) = signing_key(&app, "release").await;
    procedure(&app, json!([{"type": "compress"}, {"type": "sign", "key": key}])).await;
    let d = app
        .post("/api/v1/devices", json!({"device_id": "dev-d", "model": "CAFEBABE", "channel": "BAADFOOD"}))
        .await
        .expect(201);
    let token = d.body["target_token"].as_str().unwrap().to_owned();
    let assign = format!("/api/v1/firmware/{fw}/assign");
    let assigned =
        app.post(&assign, json!({"devices": ["dev-d"], "delivery_procedure": "dp-handle"})).await.expect(201);
    let session = assigned.body["sessions"][0]["id"].as_str().unwrap().to_owned();
    let action = assigned.body["sessions"][0]["action"]["id"].as_str().unwrap().to_owned();
    let s = app.wait_for_state(&session, &["created"]).await;
    let get = |tail: String| {
        app.client
            .get(app.url(&format!("/P1/controller/v1/dev-d{tail}")))
            .header("Authorization", format!("TargetToken {token}"))
            .header("Accept", "application/json")
    };
    let base: Value = get(format!("/deploymentBase/{action}")).send().await.unwrap().json().await.unwrap();
    let artifacts = base["deployment"]["chunks"][0]["artifacts"].as_array().unwrap().clone();
    let names: Vec<&str> = artifacts.iter().map(|a| a["filename"].as_str().unwrap()).collect();
    let file = s.body["payload"]["filename"].as_str().unwrap();
    assert_eq!(names, [file.to_owned(), format!("{file}.minisig"), format!("{file}.manifest.json")]);
    let dir = tempfile::tempdir().unwrap();
    for a in &artifacts {
        let href = a["_links"]["download-http"]["href"].as_str().unwrap();
        let path = href.split("/P1/controller/v1/dev-d").nth(1).unwrap().to_owned();
        let bytes = get(path).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(sha256_hex(&bytes), a["hashes"]["sha256"].as_str().unwrap(), "{}", a["filename"]);
        assert_eq!(bytes.len() as u64, a["size"].as_u64().unwrap());
        write(dir.path(), a["filename"].as_str().unwrap(), &bytes);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("{file}.minisig"))).unwrap(),
        s.body["payload"]["signature"].as_str().unwrap()
    );
    let received = Received {
        deliverable: dir.path().join(file),
        manifest: serde_json::from_str(s.body["payload"]["signed_manifest"].as_str().unwrap()).unwrap(),
        dir,
    };
    let (ok, said, rebuilt) = verify(&received, &public, None, None);
    assert!(ok, "{said}");
    assert!(rebuilt == image);
}

// ---- the stock tools a device uses ----------------------------------------------------------

/// Runs a stock tool; its exit status and output.
fn stock(program: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let done = std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let said = format!("{}{}", String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
    (done.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(devicehub_tool_tests), ignore = "minisign or zstd is not installed: stock-tool checks skipped")]
async fn stock_minisign_accepts_the_signature_and_stock_zstd_applies_the_delta() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (old, new) = two_releases(&app, 2_000_000).await;
    let (key, public) = signing_key(&app, "release").await;
    procedure(&app, json!([{"type": "delta"}, {"type": "sign", "key": key}])).await;
    let s = deliverable_for(&app, "dev-stock", Some("1.0.0")).await;
    let r = receive(&app, &s).await;
    let signature = r.dir.path().join(format!("{}.minisig", r.deliverable.file_name().unwrap().to_str().unwrap()));
    let public_line = public.lines().nth(1).unwrap();
    let (ok, said) = stock(
        "minisign",
        &[
            "-V".as_ref(),
            "-P".as_ref(),
            public_line.as_ref(),
            "-m".as_ref(),
            r.deliverable.as_os_str(),
            "-x".as_ref(),
            signature.as_os_str(),
        ],
    );
    assert!(ok, "minisign -V: {said}");
    // it prints the trusted comment: the manifest's digest
    let manifest = s.body["payload"]["signed_manifest"].as_str().unwrap();
    assert!(said.contains(&sha256_hex(manifest.as_bytes())), "{said}");

    let base = write(r.dir.path(), "base.bin", &old);
    let out = r.dir.path().join("rebuilt.bin");
    let window = format!("--long={}", s.body["payload"]["delta"]["window_log"]);
    let patch_from = {
        let mut a = std::ffi::OsString::from("--patch-from=");
        a.push(base.as_os_str());
        a
    };
    let (ok, said) = stock(
        "zstd",
        &[
            "-d".as_ref(),
            "-q".as_ref(),
            window.as_ref(),
            patch_from.as_os_str(),
            r.deliverable.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(ok, "zstd --patch-from: {said}");
    assert!(std::fs::read(&out).unwrap() == new, "zstd rebuilt the exact target");
}

/// A measurement for docs/benchmarks.md, not a check: how long until the last of
/// `BENCH_SESSIONS` (default 1000) identical sessions, started at once, is `created`.
/// `cargo test --release --test api thousand_identical -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
async fn thousand_identical_requests_until_the_last_is_created() {
    let sessions: usize = std::env::var("BENCH_SESSIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.queue_limit = 100_000).await;
    let (_, new) = two_releases(&app, 16 << 20).await;
    procedure(&app, json!([{"type": "delta"}, {"type": "compress"}])).await;
    let mut ids = Vec::new();
    for i in 0..sessions {
        let mut body = seed_request("1.0.0");
        body["device_id"] = json!(format!("bench-{i}"));
        ids.push(app.request_update(body).await.expect(201).id());
    }
    let started = std::time::Instant::now();
    for s in futures_util::future::join_all(ids.iter().map(|id| app.start_session(id))).await {
        s.expect(200);
    }
    let all_started = started.elapsed();
    loop {
        let created = app.get("/api/v1/firmware-update/?state=created&limit=1").await.body["count"].as_u64().unwrap();
        if created as usize == sessions {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let target = sha256_hex(&new);
    println!(
        "{sessions} sessions: all started after {:.2} s, the last created after {:.2} s; delta ran {} time(s)",
        all_started.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        devicehub::pipeline::step_runs(&target, "delta")
    );
}
