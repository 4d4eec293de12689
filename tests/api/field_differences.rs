//! What two real hawkBit clients (SWUpdate suricatta, rauc-hawkbit-updater) showed to differ
//! from hawkBit, and the API gaps a new user met (issue 15): each answer checked by status,
//! headers and body.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, pseudo_random};

crate::on_both_backends!(
    ddi_416_is_empty_and_the_session_door_keeps_its_json,
    a_streaming_install_leaves_one_download_started_event_and_a_byte_count,
    downloads_carry_the_release_time_as_last_modified,
    the_session_view_shows_the_action_and_its_cancel,
    gateway_registered_devices_have_no_target_token_until_one_is_made,
    devices_are_found_by_their_handle_within_the_callers_products,
);

const IMAGE_LEN: usize = 64 * 1024 + 3;

/// The seed catalog, a released firmware 1.1.0 (and its image), DDI on for `P1` with
/// gateway tokens; a device `dev-1` with its target token.
async fn fleet(app: &TestApp) -> (String, Vec<u8>, String, String) {
    app.seed_catalog().await;
    let image = pseudo_random(IMAGE_LEN, 15);
    let fw = app.firmware("1.1.0", image.clone(), true).await;
    let device = app
        .post(
            "/api/v1/devices",
            json!({"device_id": "dev-1", "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "1.0.0"}),
        )
        .await
        .expect(201);
    (fw, image, device.id(), device.body["target_token"].as_str().expect("target token").to_owned())
}

/// Assigns `fw` to `device` and waits for the deliverable: (session id, DDI artifact URL).
async fn assigned(app: &TestApp, fw: &str, device: &str, token: &str) -> (String, String) {
    let r = app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": [device]})).await.expect(201);
    let session = r.body["sessions"][0]["id"].as_str().expect("session").to_owned();
    app.wait_for_state(&session, &["created"]).await;
    let auth = format!("TargetToken {token}");
    let poll: Value = ddi_get(app, "dev-1", &auth).await.json().await.unwrap();
    let href = poll["_links"]["deploymentBase"]["href"].as_str().expect("deployment offered").to_owned();
    let base: Value = app.client.get(href).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    let url = base["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"]
        .as_str()
        .expect("artifact link")
        .to_owned();
    (session, url)
}

/// A GET under `/P1/controller/v1/` with an `Authorization` header.
async fn ddi_get(app: &TestApp, tail: &str, auth: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/P1/controller/v1/{tail}"))).header("Authorization", auth).send().await.unwrap()
}

fn ranged(app: &TestApp, url: &str, token: &str, range: &str) -> reqwest::RequestBuilder {
    app.client.get(url).header("Authorization", format!("TargetToken {token}")).header("Range", range)
}

async fn ddi_416_is_empty_and_the_session_door_keeps_its_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _, device, token) = fleet(&app).await;
    let (_, url) = assigned(&app, &fw, &device, &token).await;

    for range in [format!("bytes={IMAGE_LEN}-"), "bytes=0-1,5-9".to_owned()] {
        let r = ranged(&app, &url, &token, &range).send().await.unwrap();
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(r.headers()["content-range"], format!("bytes */{IMAGE_LEN}").as_str());
        assert!(r.headers().get("content-type").is_none(), "{:?}", r.headers());
        assert!(r.bytes().await.unwrap().is_empty(), "hawkBit's 416 has no body");
    }

    // the seed-003 door keeps its JSON error
    let seed = app.ready_deliverable("1.0.0").await;
    let link = seed.body["payload"]["download_link"].as_str().expect("download link").to_owned();
    let r = app.client.get(link).header("Range", format!("bytes={IMAGE_LEN}-")).send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], format!("bytes */{IMAGE_LEN}").as_str());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "range_not_satisfiable");
    assert_eq!(body["size"], IMAGE_LEN);
}

async fn a_streaming_install_leaves_one_download_started_event_and_a_byte_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, image, device, token) = fleet(&app).await;
    let (session, url) = assigned(&app, &fw, &device, &token).await;
    let history = format!("/api/v1/devices/{device}/sessions");
    let served = || async { app.get(&history).await.expect(200).body["results"][0]["bytes_served"].as_i64().unwrap() };
    // ranges after a session's first are counted in memory and written once a second; a
    // view taken while a batch is being written may be behind by that batch for a moment
    let settles_at = |want: i64| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = served().await;
            if got == want || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    assert_eq!(served().await, 0);

    // RAUC's stream_bundle reads only ranges
    let mut sum = 0;
    for (start, end) in [(0, 4095), (60_000, 65_538), (4096, 8191)] {
        let r = ranged(&app, &url, &token, &format!("bytes={start}-{end}")).send().await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap()[..], image[start..=end]);
        sum += end - start + 1;
    }
    let kinds = app.event_kinds(&session).await;
    let started = kinds.iter().filter(|k| *k == "server:DOWNLOAD_STARTED").count();
    assert_eq!(started, 1, "one event for the first range, none for the others: {kinds:?}");
    assert!(!kinds.contains(&"server:DOWNLOAD".to_owned()), "{kinds:?}");
    assert_eq!(settles_at(sum as i64).await, sum as i64);
    let event = app.events(&session).await.into_iter().find(|e| e["kind"] == "server:DOWNLOAD_STARTED").unwrap();
    assert!(event["message"].as_str().unwrap().contains("/artifacts/"), "{event}");

    // a whole download writes its DOWNLOAD row and counts too; a HEAD serves nothing
    let r = app.client.get(&url).header("Authorization", format!("TargetToken {token}")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), IMAGE_LEN);
    let r = app.client.head(&url).header("Authorization", format!("TargetToken {token}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(settles_at((sum + IMAGE_LEN) as i64).await, (sum + IMAGE_LEN) as i64);
    let kinds = app.event_kinds(&session).await;
    assert_eq!(kinds.iter().filter(|k| *k == "server:DOWNLOAD").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "server:DOWNLOAD_STARTED").count(), 1, "{kinds:?}");

    // ranges after a session's first are counted in memory and written in batches: a
    // restart right after them loses none of the count
    for _ in 0..20 {
        let r = ranged(&app, &url, &token, "bytes=0-999").send().await.unwrap();
        assert_eq!(r.status(), 206);
        r.bytes().await.unwrap();
    }
    let expected = (sum + IMAGE_LEN + 20 * 1000) as i64;
    assert_eq!(settles_at(expected).await, expected);
    let app = TestApp::start(app.stop().await, |_| {}).await;
    let served = app.get(&history).await.expect(200).body["results"][0]["bytes_served"].as_i64().unwrap();
    assert_eq!(served, expected, "the count survives a restart");
}

async fn downloads_carry_the_release_time_as_last_modified(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _, device, token) = fleet(&app).await;
    let released = app.get(&format!("/api/v1/firmware/{fw}")).await.expect(200).body["released_at"]
        .as_str()
        .expect("released")
        .to_owned();
    let released = chrono::DateTime::parse_from_rfc3339(&released).unwrap().with_timezone(&chrono::Utc);
    let http_date = |t: chrono::DateTime<chrono::Utc>| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let (_, url) = assigned(&app, &fw, &device, &token).await;
    let auth = format!("TargetToken {token}");

    let r = app.client.get(&url).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["last-modified"], http_date(released).as_str());
    // If-Modified-Since at (or after) the release time: 304; before it: the whole body
    let r = app.client.get(&url).header("Authorization", &auth).header("If-Modified-Since", http_date(released));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["last-modified"], http_date(released).as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let earlier = http_date(released - chrono::Duration::hours(1));
    let r = app.client.get(&url).header("Authorization", &auth).header("If-Modified-Since", &earlier);
    assert_eq!(r.send().await.unwrap().bytes().await.unwrap().len(), IMAGE_LEN);
    // If-Unmodified-Since before the release time: 412; an unparsable date is ignored
    let r = app.client.get(&url).header("Authorization", &auth).header("If-Unmodified-Since", &earlier);
    assert_eq!(r.send().await.unwrap().status(), 412);
    let r = app.client.get(&url).header("Authorization", &auth).header("If-Unmodified-Since", "yesterday");
    assert_eq!(r.send().await.unwrap().status(), 200);

    // the seed-003 door and the admin image download say the same
    let seed = app.ready_deliverable("1.0.0").await;
    let link = seed.body["payload"]["download_link"].as_str().unwrap().to_owned();
    let r = app.client.head(link).send().await.unwrap();
    assert_eq!(r.headers()["last-modified"], http_date(released).as_str());
    let r = app.client.head(app.url(&format!("/api/v1/firmware/{fw}/image")));
    let r = r.header("Authorization", format!("Token {ADMIN_TOKEN}")).send().await.unwrap();
    assert_eq!(r.headers()["last-modified"], http_date(released).as_str());
}

async fn the_session_view_shows_the_action_and_its_cancel(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _, device, token) = fleet(&app).await;
    let (session, _) = assigned(&app, &fw, &device, &token).await;
    let auth = format!("TargetToken {token}");

    let view = app.session(&session).await.expect(200);
    let action = &view.body["action"];
    assert_eq!(action["type"], "forced");
    assert!(action["id"].as_str().is_some_and(|id| id.parse::<i64>().is_ok()), "{action}");
    assert_eq!(action["cancel_requested"], false);
    assert_eq!(action["cancel_confirmed"], false);

    let canceled = app.post(&format!("/api/v1/firmware-update/{session}/cancel"), json!({})).await.expect(200);
    assert_eq!(canceled.body["state"], "created", "the device is asked first");
    assert_eq!(canceled.body["action"]["cancel_requested"], true);
    assert_eq!(canceled.body["action"]["cancel_confirmed"], false);
    assert_eq!(app.session(&session).await.body["action"]["cancel_requested"], true);

    // the device confirms
    let number = action["id"].as_str().unwrap();
    let confirm = json!({"id": number, "status": {"execution": "closed", "result": {"finished": "success"}}});
    let r = app
        .client
        .post(app.url(&format!("/P1/controller/v1/dev-1/cancelAction/{number}/feedback")))
        .header("Authorization", &auth)
        .json(&confirm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let done = app.session(&session).await.expect(200);
    assert_eq!(done.body["state"], "fail");
    assert_eq!(done.body["action"]["cancel_requested"], false);
    assert_eq!(done.body["action"]["cancel_confirmed"], true);

    // a session a device asked for itself has no action block
    let seed = app.ready_deliverable("1.0.0").await;
    assert!(seed.body.get("action").is_none(), "{}", seed.body);
}

async fn gateway_registered_devices_have_no_target_token_until_one_is_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    fleet(&app).await;
    app.patch("/api/v1/products/P1", json!({"ddi": {"gateway_token_auth": true}})).await.expect(200);
    let product = app.get("/api/v1/products/P1").await.id();
    let gateway = app.user_with_role("gateway", Some("device"), Some(&product)).await;
    let r = ddi_get(&app, "via-gateway", &format!("GatewayToken {gateway}")).await;
    assert_eq!(r.status(), 200);

    let twin = app.get("/api/v1/devices/via-gateway").await.expect(200);
    assert_eq!(twin.body["has_target_token"], false);
    assert!(twin.body.get("target_token").is_none());
    let r = ddi_get(&app, "via-gateway", "TargetToken anything").await;
    assert_eq!(r.status(), 401);

    let rotated = app.post(&format!("/api/v1/devices/{}/target-token", twin.id()), json!({})).await.expect(200);
    assert_eq!(rotated.body["has_target_token"], true);
    let made = rotated.body["target_token"].as_str().expect("shown once").to_owned();
    let r = ddi_get(&app, "via-gateway", &format!("TargetToken {made}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/api/v1/devices/via-gateway").await.body["has_target_token"], true);
    // an admin-made device has one from the start (shown on create)
    assert_eq!(app.get("/api/v1/devices/dev-1").await.body["has_target_token"], true);
}

async fn devices_are_found_by_their_handle_within_the_callers_products(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, device, _) = fleet(&app).await;

    let by_handle = app.get("/api/v1/devices/dev-1").await.expect(200);
    assert_eq!(by_handle.body["id"], device.as_str());
    assert_eq!(app.get(&format!("/api/v1/devices/{device}")).await.expect(200).body["device_id"], "dev-1");
    app.patch("/api/v1/devices/dev-1", json!({"name": "kitchen"})).await.expect(200);
    assert_eq!(app.get(&format!("/api/v1/devices/{device}")).await.body["name"], "kitchen");
    let history = app.get("/api/v1/devices/dev-1/sessions").await.expect(200);
    assert_eq!(history.body["results"], json!([]));
    app.get("/api/v1/devices/nobody").await.expect_error(404, "not_found");

    // a second product with a device of the same id
    let p2 = app.post("/api/v1/products", json!({"tid": "P2", "name": "Product two"})).await.expect(201).id();
    let other = app.post("/api/v1/devices", json!({"device_id": "dev-1", "product": "P2"})).await.expect(201).id();
    let r = app.get("/api/v1/devices/dev-1").await.expect_error(409, "ambiguous_device");
    let mut candidates: Vec<&str> =
        r.body["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    candidates.sort_unstable();
    let mut both = vec![device.as_str(), other.as_str()];
    both.sort_unstable();
    assert_eq!(candidates, both);
    app.call(Method::DELETE, "/api/v1/devices/dev-1", Some(ADMIN_TOKEN), None)
        .await
        .expect_error(409, "ambiguous_device");

    // someone who sees only P2 finds P2's device by the handle; P1's stays invisible
    let reader = app.user_with_role("viewer2", Some("viewer"), Some(&p2)).await;
    let r = app.call(Method::GET, "/api/v1/devices/dev-1", Some(&reader), None).await.expect(200);
    assert_eq!(r.body["id"], other.as_str());
    app.call(Method::GET, &format!("/api/v1/devices/{device}"), Some(&reader), None)
        .await
        .expect_error(404, "not_found");
}
