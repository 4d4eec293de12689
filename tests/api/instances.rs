//! Several instances as a deployment (issue 14): three `devicehub serve` processes started at
//! once on one PostgreSQL schema and one S3 bucket, each with a pipeline worker and a short
//! job lease. Any instance answers any request; each job runs once and each timer fires once;
//! `kill -9` of an instance in the middle of a pipeline run or of a download loses nothing
//! and leaves nothing stuck.
//!
//! Needs PostgreSQL (`DATABASE_URL`) and `s3s-fs` at build time; skipped otherwise, with the
//! reason.

use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestEnv, pseudo_random, seed_request, sha256_hex};
use crate::process::{Server, call, slow_gzip_catalog};
use crate::s3::S3Server;

const TOKEN: &str = "dh_several_instances_admin_token_0000";
/// Every instance of one installation is given the same sealing key (README: Sealed secrets).
const SEALING_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// One `devicehub serve` process, and the name its workers sign session events with.
struct Instance {
    server: Server,
    workers: String,
}

fn command(env: &TestEnv, s3: &S3Server, data: &std::path::Path) -> Command {
    let mut cmd = crate::process::command(env);
    cmd.env("DEVICEHUB_DATA_DIR", data) // nothing shared on local disk
        .env("DEVICEHUB_OBJECT_STORE", s3.url("hub"))
        .envs(s3.aws_env())
        .env("DEVICEHUB_ADMIN_TOKEN", TOKEN)
        .env("DEVICEHUB_SEALING_KEY", SEALING_KEY)
        .env("DEVICEHUB_WORKERS", "1")
        .env("DEVICEHUB_JOB_LEASE_SECS", "4")
        // a loaded 2-core CI box can make a live worker miss renewals of so short a lease;
        // enough attempts that such take-overs never fail the session
        .env("DEVICEHUB_JOB_MAX_ATTEMPTS", "10")
        .env("DEVICEHUB_POLL_INTERVAL_MS", "100")
        .env("DEVICEHUB_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,actix_server=warn");
    cmd
}

/// The instance name in the start-up log line of `devicehub::jobs`.
fn worker_name(logs: &Receiver<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = logs.recv_timeout(left).expect("the instance never logged its workers");
        if let Ok(entry) = serde_json::from_str::<Value>(&line)
            && let Some(name) = entry["instance"].as_str()
        {
            return name.to_owned();
        }
    }
}

fn start_together(env: &TestEnv, s3: &S3Server, dirs: &[tempfile::TempDir]) -> Vec<Instance> {
    std::thread::scope(|scope| {
        let started: Vec<_> = dirs
            .iter()
            .map(|dir| {
                scope.spawn(|| {
                    let (server, logs) = Server::start_logged(command(env, s3, dir.path()));
                    let workers = worker_name(&logs);
                    // keep draining the log so the process never blocks on a full pipe
                    std::thread::spawn(move || for _ in logs {});
                    Instance { server, workers }
                })
            })
            .collect();
        started.into_iter().map(|h| h.join().expect("an instance failed to start")).collect()
    })
}

async fn api(client: &reqwest::Client, at: &Instance, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(client, &at.server, TOKEN, method, path, body).await
}

/// Waits until the session (read through `at`) is in one of `states`.
async fn wait_for(client: &reqwest::Client, at: &Instance, id: &str, states: &[&str], secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, s) = api(client, at, Method::GET, &format!("/api/v1/firmware-update/{id}"), None).await;
        if status == 200 && states.contains(&s["state"].as_str().unwrap_or_default()) {
            return s;
        }
        assert_ne!(s["state"], "fail", "{s}");
        assert!(Instant::now() < deadline, "session {id} never reached {states:?}: {status} {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events(client: &reqwest::Client, at: &Instance, id: &str) -> Vec<Value> {
    let (status, events) = api(client, at, Method::GET, &format!("/api/v1/firmware-update/{id}/events"), None).await;
    assert_eq!(status, 200, "{events}");
    events.as_array().unwrap().clone()
}

/// A seed-003 request through `at` for `device` with the quick procedure; the session's id.
async fn request(client: &reqwest::Client, at: &Instance, device: &str) -> String {
    let mut body = seed_request("0.1.0");
    body["device_id"] = json!(device);
    body["delivery_procedure_tid"] = json!("dp-plain");
    let (status, s) = api(client, at, Method::POST, "/api/v1/firmware-update/request", Some(body)).await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_owned()
}

fn count(events: &[Value], what: impl Fn(&Value) -> bool) -> usize {
    events.iter().filter(|e| what(e)).count()
}

/// Replaces the instance part of an absolute link (DDI links name the instance that made them).
fn through(link: &str, from: &Instance, to: &Instance) -> String {
    link.replacen(&from.server.base, &to.server.base, 1)
}

/// (In a `postgres` module, so that CI's PostgreSQL run picks it up.)
mod postgres {
    #[cfg_attr(
        not(all(devicehub_pg_tests, devicehub_s3_tests)),
        ignore = "needs DATABASE_URL (PostgreSQL) and s3s-fs: several-instances test skipped"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_instances_on_one_database_and_one_bucket() {
        super::three_instances_on_one_database_and_one_bucket().await
    }
}

async fn three_instances_on_one_database_and_one_bucket() {
    let s3 = S3Server::start();
    let env = TestEnv::new(Backend::Postgres);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();

    // started at once: migrations, the first admin and the store's marker are made once
    let mut all = start_together(&env, &s3, &dirs);
    let client = reqwest::Client::new();
    let (status, users) = api(&client, &all[2], Method::GET, "/api/v1/users", None).await;
    assert_eq!((status, users["count"].as_u64()), (200, Some(1)), "{users}");
    assert!(all[0].workers != all[1].workers && all[1].workers != all[2].workers);

    // the catalog through one instance; a quick procedure beside the slow gzip one
    let image = pseudo_random(48 * 1024 * 1024, 140);
    let fw = slow_gzip_catalog(&client, &all[0].server, TOKEN, &image).await;
    let (status, body) = api(
        &client,
        &all[1],
        Method::POST,
        "/api/v1/delivery-procedures",
        Some(json!({"tid": "dp-plain", "name": "plain", "delivery_method": "DEADBEEF", "confirm": true,
                    "timeouts": {"ready": 2}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // sessions asked for on one instance, started on the next, read on the third
    let mut sessions = Vec::new();
    for i in 0..9 {
        let id = request(&client, &all[i % 3], &format!("dev-{i}")).await;
        let (status, s) =
            api(&client, &all[(i + 1) % 3], Method::POST, &format!("/api/v1/firmware-update/{id}/start"), None).await;
        assert_eq!(status, 200, "{s}");
        sessions.push(id);
    }
    for (i, id) in sessions.iter().enumerate() {
        let done = wait_for(&client, &all[(i + 2) % 3], id, &["created"], 60).await;
        assert_eq!(done["payload"]["sha256"], sha256_hex(&image));
        if i == 0 {
            let link = done["payload"]["download_link"].as_str().unwrap();
            let bytes = client.get(link).send().await.unwrap().bytes().await.unwrap();
            assert!(bytes == image, "the deliverable, through another instance than the one that made it");
        }
        let (status, _) = api(
            &client,
            &all[i % 3],
            Method::POST,
            &format!("/api/v1/firmware-update/{id}/confirm"),
            Some(json!({"success": true})),
        )
        .await;
        assert_eq!(status, 200);
    }
    // each job ran once: one claim, no take-over, one pipeline outcome per session
    for id in &sessions {
        let log = events(&client, &all[0], id).await;
        assert_eq!(count(&log, |e| e["to_state"] == "processing"), 1, "{log:?}");
        assert_eq!(count(&log, |e| e["to_state"] == "created"), 1, "{log:?}");
        assert_eq!(count(&log, |e| e["kind"] == "takeover"), 0, "{log:?}");
    }

    // each timer fires once: sessions nobody starts expire (after 2 s), every instance's
    // sweeper racing for them
    let mut idle = Vec::new();
    for i in 0..6 {
        idle.push(request(&client, &all[i % 3], &format!("idle-{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for id in &idle {
        let log = events(&client, &all[1], id).await;
        assert_eq!(count(&log, |e| e["kind"] == "expired"), 1, "{log:?}");
    }

    // a hawkBit device polls one instance, reads its action on another, downloads from the
    // third and reports success to the first
    let (status, device) = api(
        &client,
        &all[0],
        Method::POST,
        "/api/v1/devices",
        Some(json!({"device_id": "ddi-1", "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "0.1.0"})),
    )
    .await;
    assert_eq!(status, 201, "{device}");
    let auth = format!("TargetToken {}", device["target_token"].as_str().unwrap());
    let (status, assigned) = api(
        &client,
        &all[1],
        Method::POST,
        &format!("/api/v1/firmware/{fw}/assign"),
        Some(json!({"devices": ["ddi-1"], "delivery_procedure": "dp-plain"})),
    )
    .await;
    assert_eq!(status, 201, "{assigned}");
    let ddi_session = assigned["sessions"][0]["id"].as_str().unwrap().to_owned();
    wait_for(&client, &all[2], &ddi_session, &["created"], 60).await;
    let ddi = |url: String| client.get(url).header("Authorization", auth.clone()).send();
    let poll: Value =
        ddi(format!("{}/P1/controller/v1/ddi-1", all[0].server.base)).await.unwrap().json().await.unwrap();
    let base_link = poll["_links"]["deploymentBase"]["href"].as_str().expect("an action").to_owned();
    let deployment: Value = ddi(through(&base_link, &all[0], &all[1])).await.unwrap().json().await.unwrap();
    let artifact = &deployment["deployment"]["chunks"][0]["artifacts"][0];
    let download = artifact["_links"]["download-http"]["href"].as_str().unwrap();
    let bytes = ddi(through(download, &all[1], &all[2])).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), artifact["hashes"]["sha256"].as_str().unwrap());
    let action = deployment["id"].as_str().unwrap();
    let feedback = client
        .post(format!("{}/P1/controller/v1/ddi-1/deploymentBase/{action}/feedback", all[0].server.base))
        .header("Authorization", auth.clone())
        .json(&json!({"status": {"execution": "closed", "result": {"finished": "success"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(feedback.status(), 200);
    assert_eq!(wait_for(&client, &all[2], &ddi_session, &["success"], 10).await["state"], "success");

    // kill -9 of the instance running a pipeline: another takes the job over once its lease
    // runs out, and its deliverable is right
    let (status, s) =
        api(&client, &all[0], Method::POST, "/api/v1/firmware-update/request", Some(seed_request("0.1.0"))).await;
    assert_eq!(status, 201, "{s}");
    let slow = s["id"].as_str().unwrap().to_owned();
    api(&client, &all[1], Method::POST, &format!("/api/v1/firmware-update/{slow}/start"), None).await;
    wait_for(&client, &all[2], &slow, &["processing"], 30).await;
    let claim = events(&client, &all[2], &slow).await;
    let claim = claim.iter().find(|e| e["to_state"] == "processing").unwrap()["message"].as_str().unwrap().to_owned();
    let busy = all.iter().position(|i| claim.contains(&format!("worker {}-", i.workers))).expect("whose worker");
    all.remove(busy).server.kill();
    let done = wait_for(&client, &all[0], &slow, &["created"], 180).await;
    let log = events(&client, &all[1], &slow).await;
    // (on a loaded box a live worker may miss a renewal of its 4 s lease too and be taken
    // over once more; the outcome is still recorded once, by the lease's holder)
    let attempt_2 = |e: &Value| e["kind"] == "takeover" && e["message"].as_str().unwrap().contains("(attempt 2)");
    assert_eq!(count(&log, attempt_2), 1, "{log:?}");
    assert_eq!(count(&log, |e| e["to_state"] == "created"), 1, "{log:?}");
    let gz = client.get(done["payload"]["download_link"].as_str().unwrap()).send().await.unwrap();
    let gz = gz.bytes().await.unwrap();
    assert_eq!(done["payload"]["sha256"], sha256_hex(&gz));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert!(unzipped == image, "the deliverable is the gzip of the image");

    // kill -9 in the middle of a download: the client resumes on the other instance
    let url = |at: &Instance| format!("{}/api/v1/firmware/{fw}/image", at.server.base);
    let mut body =
        client.get(url(&all[0])).header("Authorization", format!("Token {TOKEN}")).send().await.unwrap().bytes_stream();
    let mut got = Vec::new();
    while got.len() < 4 * 1024 * 1024 {
        got.extend_from_slice(&body.next().await.expect("more bytes").unwrap());
    }
    all.remove(0).server.kill();
    while let Some(Ok(chunk)) = body.next().await {
        got.extend_from_slice(&chunk);
    }
    assert!(got.len() < image.len(), "the killed instance cannot have sent everything");
    let rest = client
        .get(url(&all[0]))
        .header("Authorization", format!("Token {TOKEN}"))
        .header("Range", format!("bytes={}-", got.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert!(got == image, "the resumed download is the image");

    // nothing stuck: the survivor is ready, and a new instance joins and serves what the
    // others made
    let (status, ready) = api(&client, &all[0], Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    let (joined, logs) = Server::start_logged(command(&env, &s3, dirs[0].path()));
    std::thread::spawn(move || for _ in logs {});
    let joined = Instance { server: joined, workers: String::new() };
    let (status, s) = api(&client, &joined, Method::GET, &format!("/api/v1/firmware-update/{slow}"), None).await;
    assert_eq!((status, s["state"].as_str()), (200, Some("created")), "{s}");
    let (status, jobs) = api(&client, &joined, Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{jobs}");
    joined.server.kill();
    all.remove(0).server.kill();
}
