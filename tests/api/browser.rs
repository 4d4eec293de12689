//! The web UI in a real browser (headless Chromium through chromedriver): sign in, make a
//! product, model, channel and procedure, upload an image (the progress bar reaches 100 %),
//! release it, add a device, assign the firmware to it, watch the session appear and reach
//! `created` in the live list after the device polls (hawkBit DDI), open the device's page,
//! and sign out. Every main page is saved as a screenshot under `target/ui-screenshots/`.
//!
//! Without Chromium and chromedriver it is listed as ignored (see `build.rs`); CI installs
//! them and sets `DEVICEHUB_REQUIRE_BROWSER=1`, which makes a missing browser a failure.

use std::path::PathBuf;

use serde_json::json;

use crate::helpers::{Backend, TestApp, pseudo_random};
use crate::webdriver::{Browser, binaries};

const PASSWORD: &str = "browser-test-password";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(devicehub_browser_tests),
    ignore = "chromium and chromedriver not found: browser test skipped (apt-get install chromium chromium-driver)"
)]
async fn browser_walkthrough() {
    let Some((chromium, chromedriver)) = binaries() else {
        assert!(
            std::env::var("DEVICEHUB_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "DEVICEHUB_REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
        );
        eprintln!("browser test skipped: chromium or chromedriver is missing");
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.post("/api/v1/users/admin/password", json!({"password": PASSWORD})).await.expect(204);
    let shots = screenshots();
    let b = Browser::start(&chromium, &chromedriver).await;
    let shot = |name: &str| shots.join(format!("{name}.png"));
    let url = |path: &str| app.url(path);

    // not signed in: the sign-in page
    b.goto(&url("/ui/devices")).await;
    b.wait_for("#username").await;
    assert!(b.url().await.contains("/ui/sign-in?next="));
    b.screenshot(&shot("sign-in")).await;
    b.fill("#username", "admin").await;
    b.fill("#password", PASSWORD).await;
    b.click("form[action='/ui/sign-in'] button[type=submit]").await;
    b.wait_for("h1").await;
    assert!(b.url().await.ends_with("/ui/devices"), "back where we wanted to go: {}", b.url().await);

    // the catalog
    b.goto(&url("/ui/products")).await;
    b.fill("#p-tid", "P1").await;
    b.fill("#p-name", "Sensor").await;
    b.click("form[action='/ui/products'] button").await;
    b.wait_for(".notice").await;
    assert!(b.body_text().await.contains("Product P1 Sensor"));
    for (path, tid, name) in [("/ui/models", "CAFEBABE", "Rev A"), ("/ui/channels", "BAADFOOD", "stable")] {
        b.goto(&url(path)).await;
        b.fill("#h-tid", tid).await;
        b.fill("#h-name", name).await;
        b.select("#h-product", "P1").await;
        b.click(&format!("form[action='{path}'][method=post] button")).await;
        b.wait_for(".notice").await;
    }
    b.goto(&url("/ui/delivery-methods")).await;
    b.fill("#h-tid", "DEADBEEF").await;
    b.fill("#h-name", "HTTP link").await;
    b.click("form[action='/ui/delivery-methods'][method=post] button").await;
    b.wait_for(".notice").await;
    // a procedure: the API's parser checks the steps, its message shows, the input stays
    b.goto(&url("/ui/delivery-procedures")).await;
    b.fill("#dp-tid", "dp-handle").await;
    b.fill("#dp-name", "gzip").await;
    b.fill("#dp-steps", r#"[{"type": "gzip", "level": 42}]"#).await;
    b.select("#dp-confirm", "yes").await;
    b.click("form[action='/ui/delivery-procedures'] button[type=submit]").await;
    b.wait_for(".problem").await;
    assert!(b.text(".problem").await.contains("level"), "{}", b.text(".problem").await);
    b.screenshot(&shot("procedure-validation")).await;
    b.fill("#dp-steps", r#"[{"type": "gzip", "level": 6}]"#).await;
    b.select("#dp-confirm", "yes").await;
    b.click("form[action='/ui/delivery-procedures'] button[type=submit]").await;
    b.wait_for(".notice").await;
    b.screenshot(&shot("procedure")).await;

    // firmware: a draft, its image uploaded with a progress bar, released
    b.goto(&url("/ui/firmware")).await;
    b.select("#n-model", "CAFEBABE").await;
    b.fill("#n-version", "1.0.0").await;
    b.click("input[name=channels]").await;
    b.click("form[action='/ui/firmware'][method=post] button").await;
    b.wait_for("#upload").await;
    let image = app.env.dir.path().join("sensor-1.0.0.bin");
    std::fs::write(&image, pseudo_random(8 * 1024 * 1024, 13)).unwrap();
    b.fill("#upload-file", &image.display().to_string()).await;
    b.click("#upload-button").await;
    b.until("the upload", 60, "return document.getElementById('upload').getAttribute('data-done') === '1';", json!([]))
        .await;
    let progress = b.script("return document.getElementById('upload-progress').value;", json!([])).await;
    assert_eq!(progress, 100, "the progress bar reached 100 %");
    let status = b.text("#upload-status").await;
    assert!(status.starts_with("100 %: uploaded 8388608 bytes"), "{status}");
    b.screenshot(&shot("firmware-upload")).await;
    let firmware_page = b.url().await;
    b.goto(&firmware_page).await;
    b.click("#release-button").await;
    b.wait_for("#assign").await;
    assert!(b.text(".notice").await.contains("Released"));

    // a device, its target token shown once
    b.goto(&url("/ui/devices")).await;
    b.fill("#d-id", "sensor-0001").await;
    b.fill("#d-name", "Lab sensor").await;
    b.select("#d-model", "CAFEBABE").await;
    b.select("#d-channel", "BAADFOOD").await;
    b.click("form[action='/ui/devices'][method=post] button").await;
    let token = b.text("#target-token").await;
    assert_eq!(token.len(), 32, "a hawkBit target token: {token}");

    // assigned to it
    b.goto(&firmware_page).await;
    b.fill("#a-devices", "sensor-0001").await;
    b.select("#a-type", "forced").await;
    b.click("#assign-button").await;
    b.wait_for(".notice").await;
    assert!(b.text(".notice").await.contains("Assigned"));

    // the live session list: the session is there; the device polls; the list shows `created`
    // without the page being loaded again
    b.goto(&url("/ui/sessions")).await;
    b.wait_for("#session-rows").await;
    assert!(b.text("#session-rows").await.contains("sensor-0001"));
    b.script("window.stillTheSamePage = true;", json!([])).await;
    // the device polls (hawkBit DDI) until it is offered the update, once the pipeline has
    // prepared it
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let deployment = loop {
        let poll = app
            .client
            .get(app.url("/P1/controller/v1/sensor-0001"))
            .header("Authorization", format!("TargetToken {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(poll.status(), 200);
        let poll: serde_json::Value = poll.json().await.unwrap();
        if let Some(href) = poll["_links"]["deploymentBase"]["href"].as_str() {
            break href.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the device was never offered the update: {poll}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    b.until(
        "the session in state created",
        30,
        "return document.getElementById('session-rows').textContent.includes('created');",
        json!([]),
    )
    .await;
    assert_eq!(b.script("return window.stillTheSamePage === true;", json!([])).await, true, "refreshed in place");
    b.screenshot(&shot("sessions")).await;

    // the device page: twin, history with events
    b.click("#session-rows a[href^='/ui/devices/']").await;
    b.wait_for(".history").await;
    let page = b.body_text().await;
    assert!(page.contains("Device sensor-0001") && page.contains("Lab sensor"), "{page}");
    assert!(page.contains("assigned") && page.contains("created"), "{page}");
    b.screenshot(&shot("device")).await;
    b.click(".history h3 a").await;
    b.wait_for(".events").await;
    b.screenshot(&shot("session")).await;

    // the device installs it and says so: the overview counts it under its new version
    let action = deployment.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let feedback = app
        .client
        .post(app.url(&format!("/P1/controller/v1/sensor-0001/deploymentBase/{action}/feedback")))
        .header("Authorization", format!("TargetToken {token}"))
        .json(&closed)
        .send()
        .await
        .unwrap();
    assert_eq!(feedback.status(), 200);

    // the other main pages
    for (name, path) in [
        ("overview", "/ui"),
        ("products", "/ui/products"),
        ("models", "/ui/models"),
        ("channels", "/ui/channels"),
        ("delivery-methods", "/ui/delivery-methods"),
        ("procedures", "/ui/delivery-procedures"),
        ("firmware-list", "/ui/firmware"),
        ("devices", "/ui/devices"),
        ("users", "/ui/users"),
        ("account", "/ui/users/me"),
        ("grants", "/ui/grants"),
    ] {
        b.goto(&url(path)).await;
        b.wait_for("main h1").await;
        b.screenshot(&shot(name)).await;
    }
    b.goto(&firmware_page).await;
    b.wait_for("#progress").await;
    b.screenshot(&shot("firmware")).await;
    b.goto(&url("/ui")).await;
    b.find("svg.bars rect.bar").await;
    assert!(b.text("svg.bars").await.contains("1.0.0"), "the chart counts the installed version");
    // at phone width nothing runs off the side
    b.resize(390, 844).await;
    for (name, path) in [("phone-overview", "/ui"), ("phone-sessions", "/ui/sessions")] {
        b.goto(&url(path)).await;
        b.wait_for("main h1").await;
        let wide = b.script("return document.documentElement.scrollWidth <= window.innerWidth + 1;", json!([])).await;
        assert_eq!(wide, true, "{path} is wider than a phone");
        b.screenshot(&shot(name)).await;
    }
    b.resize(1280, 900).await;

    // no content security policy violation on the way (inline code would have caused one)
    let violations: Vec<String> =
        b.console().await.into_iter().filter(|m| m.contains("Content Security Policy")).collect();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");

    // sign out: back at the sign-in page, and the pages are closed again
    b.click(".signout button").await;
    b.wait_for("#username").await;
    assert!(b.body_text().await.contains("You are signed out."));
    b.goto(&url("/ui/devices")).await;
    b.wait_for("#username").await;
    assert!(b.url().await.contains("/ui/sign-in"));
    b.quit().await;
}
