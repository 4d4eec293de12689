//! What an operator wires in (issue 15): request ids (echoed, on the events a request
//! writes, on every JSON log line of the real binary), and `/metrics` read by a Prometheus
//! text parser.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, TestEnv};

crate::on_both_backends!(
    request_ids_are_echoed_or_made_and_written_on_events,
    the_real_binary_logs_one_json_object_per_line_with_the_request_id,
    metrics_parse_and_move_after_a_session,
    metrics_can_ask_for_a_token,
);

async fn request_ids_are_echoed_or_made_and_written_on_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.firmware("1.1.0", vec![7; 4096], true).await;

    // a client's id comes back; a missing, long or unprintable one is replaced by a UUID
    let r = app.client.get(app.url("/healthz")).header("X-Request-Id", "edge-42.a").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "edge-42.a");
    for bad in [None, Some("x".repeat(129)), Some("two words".to_owned())] {
        let mut req = app.client.get(app.url("/api/v1/nowhere"));
        if let Some(b) = &bad {
            req = req.header("X-Request-Id", b.as_str());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404, "errors carry an id too");
        let made = r.headers()["x-request-id"].to_str().unwrap();
        let uuid = uuid::Uuid::parse_str(made).unwrap_or_else(|_| panic!("{bad:?} gave {made}"));
        assert_eq!(uuid.get_version_num(), 7);
    }

    // the events a request writes carry its id; those of the pipeline job carry none
    let r = app
        .client
        .post(app.url("/api/v1/firmware-update/request"))
        .header("Authorization", format!("Token {ADMIN_TOKEN}"))
        .header("X-Request-Id", "req-asked")
        .json(&crate::helpers::seed_request("1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/firmware-update/{id}/start")))
        .header("Authorization", format!("Token {ADMIN_TOKEN}"))
        .header("X-Request-Id", "req-started")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_for_state(&id, &["created"]).await;
    let events = app.events(&id).await;
    let by = |to: &str| events.iter().find(|e| e["to_state"] == to).unwrap_or_else(|| panic!("{events:?}")).clone();
    assert_eq!(by("ready")["request_id"], "req-asked", "{events:?}");
    assert_eq!(by("queued")["request_id"], "req-started");
    assert!(by("created").get("request_id").is_none(), "written by the pipeline job: {events:?}");
}

async fn the_real_binary_logs_one_json_object_per_line_with_the_request_id(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut cmd = crate::process::command(&env);
    cmd.env("DEVICEHUB_LOG_FORMAT", "json").env("RUST_LOG", "debug,actix_server=warn,h2=warn,hyper=warn");
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn devicehub");
    let stdout = child.stdout.take().unwrap();
    let base = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("devicehub listening on ").map(|u| u.trim_end_matches('/').to_owned()))
        .expect("listening");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/users/me"))
        .header("X-Request-Id", "json-log-probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "json-log-probe-1");

    // the request's DEBUG line says its id; every line is one JSON object without colour codes
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else { break None };
        assert!(!line.contains('\u{1b}'), "colour escape in a log that is not a terminal: {line}");
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        if line.contains("json-log-probe-1") {
            break Some(object);
        }
        seen.push(line);
    };
    let _ = child.kill();
    let _ = child.wait();
    let object = found.unwrap_or_else(|| panic!("no log line with the request id; saw:\n{}", seen.join("\n")));
    assert_eq!(object["span"]["id"], "json-log-probe-1", "{object}");
    assert_eq!(object["span"]["name"], "request");
}

/// Scrapes `/metrics` and parses it as Prometheus does (and gives the text too).
async fn scrape(app: &TestApp) -> (prometheus_parse::Scrape, String) {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let parsed =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    (parsed, text)
}

/// The value of the series `name` whose labels include `labels` (0 when absent).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn metrics_parse_and_move_after_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let image = vec![9u8; 10_000];
    let fw = app.firmware("1.1.0", image.clone(), true).await;
    let device = app
        .post("/api/v1/devices", json!({"device_id": "m-1", "model": "CAFEBABE", "channel": "BAADFOOD"}))
        .await
        .expect(201);
    let token = device.body["target_token"].as_str().unwrap().to_owned();

    let (before, before_text) = scrape(&app).await;
    for series in [
        "devicehub_db_pool_max_connections",
        "devicehub_db_pool_connections",
        "devicehub_http_request_duration_seconds",
    ] {
        assert!(before.samples.iter().any(|s| s.metric == series), "{series} missing: {:?}", before.samples);
    }

    // a seed-003 session from request to success, with its download
    let created = app.ready_deliverable("1.0.0").await;
    let link = created.body["payload"]["download_link"].as_str().unwrap().to_owned();
    assert_eq!(app.client.get(link).send().await.unwrap().bytes().await.unwrap().len(), image.len());
    app.confirm_session(&created.id(), true).await.expect(200);
    // an assigned one, polled and downloaded over DDI, with a wrong token too
    let assigned = app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["m-1"]})).await.expect(201);
    let session = assigned.body["sessions"][0]["id"].as_str().unwrap().to_owned();
    app.wait_for_state(&session, &["created"]).await;
    let poll = |auth: String| app.client.get(app.url("/P1/controller/v1/m-1")).header("Authorization", auth);
    let r = poll(format!("TargetToken {token}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = poll(format!("TargetToken {token}")).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(poll("TargetToken wrong".into()).send().await.unwrap().status(), 401);
    let number = assigned.body["sessions"][0]["action"]["id"].as_str().unwrap().to_owned();
    let feedback = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}}});
    let r = app
        .client
        .post(app.url(&format!("/P1/controller/v1/m-1/deploymentBase/{number}/feedback")))
        .header("Authorization", format!("TargetToken {token}"))
        .json(&feedback)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (after, after_text) = scrape(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(a > b, "{name}{labels:?} did not move: {b} → {a}");
    };
    moved("devicehub_session_transitions_total", &[("from", "created"), ("to", "success")]);
    moved("devicehub_session_transitions_total", &[("from", "queued"), ("to", "processing")]);
    moved("devicehub_pipeline_runs_total", &[("result", "success")]);
    moved("devicehub_pipeline_duration_seconds", &[("result", "success")]);
    moved("devicehub_downloads_total", &[("door", "rest")]);
    moved("devicehub_download_bytes_total", &[("door", "rest")]);
    moved("devicehub_ddi_polls_total", &[("result", "200")]);
    moved("devicehub_ddi_polls_total", &[("result", "304")]);
    moved("devicehub_ddi_polls_total", &[("result", "401")]);
    moved("devicehub_ddi_feedback_total", &[("kind", "deployment"), ("execution", "proceeding"), ("finished", "none")]);
    // (prometheus-parse cuts a label value at its first `}`, so a pattern with parameters is
    // read from the text: the histogram's count line)
    let count = |text: &str| {
        let key = r#"devicehub_http_request_duration_seconds_count{method="GET",route="/{tenant}/controller/v1/{controller}"} "#;
        text.lines().find_map(|l| l.strip_prefix(key)).map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    assert!(count(&after_text) >= count(&before_text) + 3.0, "the DDI poll's latency is counted under its pattern");
    moved(
        "devicehub_http_request_duration_seconds",
        &[("method", "POST"), ("route", "/api/v1/firmware-update/request")],
    );
    // sessions by state and door, from the database at scrape time
    assert_eq!(value(&after, "devicehub_sessions", &[("state", "success"), ("door", "rest")]), 1.0);
    assert_eq!(value(&after, "devicehub_sessions", &[("state", "created"), ("door", "hawkbit")]), 1.0);
    // labels are route patterns, never raw paths
    assert!(
        after.samples.iter().all(|s| s.labels.get("route").is_none_or(|r| !r.contains("m-1") && !r.contains(&session))),
        "a raw path became a label"
    );
    // the queue is empty once the pipelines ran; its series appear when jobs wait
    assert_eq!(value(&after, "devicehub_job_queue_depth", &[("kind", "pipeline")]), 0.0);
}

async fn metrics_can_ask_for_a_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.metrics_token = Some(devicehub::settings::Secret::new("scrape-me"));
    })
    .await;
    let get = |auth: Option<&str>| {
        let mut r = app.client.request(Method::GET, app.url("/metrics"));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some("Bearer nope")).await.unwrap().status(), 401);
    assert_eq!(get(Some(&format!("Token {ADMIN_TOKEN}"))).await.unwrap().status(), 401);
    let r = get(Some("Bearer scrape-me")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("devicehub_db_pool_max_connections"));
}
