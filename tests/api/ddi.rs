//! hawkBit DDI v1: the `hawkbit` crate (liebherr-group/hawkbit-rs) drives the real server as
//! a device, and raw requests check the protocol details of the spec's §0 list.

use hawkbit::ddi::{Client, ClientAuthorization, Execution, Finished, Mode, Type};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, Resp, TestApp, pseudo_random};

crate::on_both_backends!(
    gateway_device_installs_an_update_with_the_hawkbit_client,
    a_device_reports_failure,
    an_admin_cancels_and_the_device_confirms,
    a_new_assignment_supersedes_the_open_one,
    consent_and_auto_confirm,
    wrong_or_missing_credentials_get_an_empty_401_on_every_route,
    protocol_details_of_the_easy_to_get_wrong_list,
    config_data_merges_replaces_and_removes,
    action_types_and_maintenance_windows,
    assignments_pick_devices_by_attributes_and_obey_the_queue_limit,
    refused_cancel_installed_base_and_the_gateway_switch,
    a_product_admin_cannot_take_another_products_tenant,
    credentials_are_checked_before_the_body_is_read,
    a_body_that_never_arrives_times_out,
);

const IMAGE_LEN: usize = 300 * 1024 + 17;

/// The seed catalog, a released firmware 1.1.0 and its image.
async fn fleet(app: &TestApp) -> (String, Vec<u8>) {
    app.seed_catalog().await;
    let image = pseudo_random(IMAGE_LEN, 44);
    let fw = app.firmware("1.1.0", image.clone(), true).await;
    (fw, image)
}

/// A device made by the admin; its target token (shown once).
pub(crate) async fn device(app: &TestApp, device_id: &str) -> (String, String) {
    let r = app
        .post(
            "/api/v1/devices",
            json!({"device_id": device_id, "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "1.0.0"}),
        )
        .await
        .expect(201);
    (r.id(), r.body["target_token"].as_str().expect("target token shown on create").to_owned())
}

fn client(app: &TestApp, device_id: &str, auth: ClientAuthorization) -> Client {
    Client::new(&app.base, "P1", device_id, auth, None, None, None).expect("DDI client")
}

/// Assigns a firmware to devices; the new session ids and DDI action ids.
pub(crate) async fn assign(app: &TestApp, fw: &str, body: Value) -> Vec<(String, String)> {
    let r = app.post(&format!("/api/v1/firmware/{fw}/assign"), body).await.expect(201);
    r.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["action"]["id"].as_str().unwrap().to_owned()))
        .collect()
}

/// A raw DDI request under `/P1/controller/v1/{device}`.
async fn ddi(app: &TestApp, method: Method, device: &str, tail: &str, auth: Option<&str>, body: Option<Value>) -> Resp {
    let mut req = app.client.request(method, app.url(&format!("/P1/controller/v1/{device}{tail}")));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::from(req.send().await.expect("DDI request")).await
}

async fn gateway_on(app: &TestApp) -> String {
    app.patch("/api/v1/products/P1", json!({"ddi": {"gateway_token_auth": true}})).await.expect(200);
    let product = app.get("/api/v1/products/P1").await.id();
    app.user_with_role("gateway", Some("device"), Some(&product)).await
}

async fn gateway_device_installs_an_update_with_the_hawkbit_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, image) = fleet(&app).await;
    let gateway = gateway_on(&app).await;
    let dev = client(&app, "dev-1", ClientAuthorization::GatewayToken(gateway.clone()));

    // the first poll registers the device and asks for its attributes
    let reply = dev.poll().await.expect("first poll");
    assert_eq!(reply.polling_sleep().unwrap(), std::time::Duration::from_secs(300));
    assert!(reply.update().is_none());
    let config = reply.config_data_request().expect("configData requested of a new device");
    config
        .upload(Execution::Closed, Finished::Success, Some(Mode::Merge), json!({"hwRevision": "2"}), vec![])
        .await
        .expect("configData accepted");
    let listed = app.get("/api/v1/devices?device_id=dev-1").await.expect(200);
    let device_id = listed.body["results"][0]["id"].as_str().expect("registered device").to_owned();
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["attributes"], json!({"hwRevision": "2"}));
    assert!(dev.poll().await.unwrap().config_data_request().is_none(), "configData link cleared");

    // the admin assigns; the deliverable is prepared before the device sees the action
    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-1"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    let update = dev.poll().await.unwrap().update().expect("deployment offered").fetch().await.expect("deploymentBase");
    assert_eq!(update.action_id(), action);
    assert_eq!(update.download_type(), Type::Forced);
    assert_eq!(update.update_type(), Type::Forced);
    assert!(update.maintenance_window().is_none());
    let chunk = update.chunks().next().expect("one chunk");
    assert_eq!(chunk.version(), "1.1.0");
    let artifact = chunk.artifacts().next().expect("one artifact");
    assert_eq!(artifact.size() as usize, image.len());

    // a full download, checked against all three hashes
    let dir = tempfile::tempdir().unwrap();
    let downloaded = artifact.download(dir.path()).await.expect("full download");
    downloaded.check_sha1().await.expect("sha1");
    downloaded.check_md5().await.expect("md5");
    downloaded.check_sha256().await.expect("sha256");
    assert_eq!(std::fs::read(downloaded.file()).unwrap(), image);

    // an interrupted download: the client resumes its .part file with a Range request
    let resumed_dir = tempfile::tempdir().unwrap();
    let part = resumed_dir.path().join(format!("{}.part", artifact.filename()));
    std::fs::write(&part, &image[..100_000]).unwrap();
    let resumed = artifact.download(resumed_dir.path()).await.expect("resumed download");
    resumed.check_sha256().await.expect("sha256 after resume");
    assert_eq!(std::fs::read(resumed.file()).unwrap(), image);

    update.send_feedback(Execution::Proceeding, Finished::None, vec!["installing"]).await.expect("proceeding");
    assert_eq!(app.session(&session).await.body["state"], "created", "proceeding does not close the action");
    update.send_feedback(Execution::Closed, Finished::Success, vec!["installed"]).await.expect("closed");

    let done = app.session(&session).await.expect(200);
    assert_eq!(done.body["state"], "success");
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["installed_version"], "1.1.0");
    assert_eq!(twin.body["installed_firmware"], fw.as_str());

    // no more action; the installed one is offered as installedBase, and attributes are asked again
    let poll = ddi(&app, Method::GET, "dev-1", "", Some(&format!("GatewayToken {gateway}")), None).await.expect(200);
    let links = &poll.body["_links"];
    assert!(links.get("deploymentBase").is_none(), "{poll:?}");
    assert!(links["installedBase"]["href"].as_str().unwrap().ends_with(&format!("/installedBase/{action}")));
    assert!(links.get("configData").is_some());

    // the admin sees the device's action history with the device's messages; the ranged
    // download wrote nothing, the full one wrote one DOWNLOAD entry
    let history = app.get(&format!("/api/v1/devices/{device_id}/sessions")).await.expect(200);
    let entry = &history.body["results"][0];
    assert_eq!(entry["id"], session.as_str());
    assert_eq!(entry["action"]["id"], action.as_str());
    let log = app.events(&session).await;
    let kinds: Vec<&str> = log.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "server:DOWNLOAD").count(), 1, "{kinds:?}");
    assert!(kinds.contains(&"server:RETRIEVED"), "{kinds:?}");
    let messages: Vec<&str> = log.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.contains(&"installing") && messages.contains(&"installed"), "{messages:?}");
}

async fn a_device_reports_failure(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let (device_id, token) = device(&app, "dev-2").await;
    let dev = client(&app, "dev-2", ClientAuthorization::TargetToken(token.clone()));
    let (session, action) = assign(&app, &fw, json!({"devices": [device_id]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;

    let update = dev.poll().await.unwrap().update().expect("deployment").fetch().await.unwrap();
    update.send_feedback(Execution::Download, Finished::None, vec![]).await.unwrap();
    update.send_feedback(Execution::Closed, Finished::Failure, vec!["disk full"]).await.expect("failure accepted");

    let s = app.session(&session).await.expect(200);
    assert_eq!(s.body["state"], "fail");
    assert_eq!(s.body["payload"]["reason"], "disk full");
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["installed_version"], "1.0.0", "a failed update changes nothing on the twin");

    // the action is over: more feedback is 410, and the poll offers nothing
    let auth = format!("TargetToken {token}");
    let late = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let r =
        ddi(&app, Method::POST, "dev-2", &format!("/deploymentBase/{action}/feedback"), Some(&auth), Some(late)).await;
    assert_eq!(r.status, 410);
    assert_eq!(app.session(&session).await.body["state"], "fail");
    let poll = ddi(&app, Method::GET, "dev-2", "", Some(&auth), None).await.expect(200);
    assert!(poll.body["_links"].get("deploymentBase").is_none());
    // actionHistory shows the device's messages, newest first, with the hawkBit status
    let base = ddi(&app, Method::GET, "dev-2", &format!("/deploymentBase/{action}?actionHistory=5"), Some(&auth), None)
        .await
        .expect(200);
    assert_eq!(base.body["actionHistory"]["status"], "ERROR");
    assert_eq!(base.body["actionHistory"]["messages"][0], "disk full");
}

async fn an_admin_cancels_and_the_device_confirms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let (device_id, token) = device(&app, "dev-3").await;
    let auth = format!("TargetToken {token}");
    let dev = client(&app, "dev-3", ClientAuthorization::TargetToken(token.clone()));
    let (session, action) = assign(&app, &fw, json!({"devices": [device_id]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    let update = dev.poll().await.unwrap().update().expect("deployment").fetch().await.unwrap();

    let canceled = app.post(&format!("/api/v1/firmware-update/{session}/cancel"), json!({})).await.expect(200);
    assert_eq!(canceled.body["state"], "created", "the device is asked first");

    // §0.5: deployment feedback `canceled` is recorded but does not close the action
    update.send_feedback(Execution::Canceled, Finished::None, vec![]).await.unwrap();
    assert_eq!(app.session(&session).await.body["state"], "created");

    let reply = dev.poll().await.unwrap();
    assert!(reply.update().is_none(), "the cancel link replaces the deployment link");
    let cancel = reply.cancel_action().expect("cancelAction offered");
    assert_eq!(cancel.id().await.unwrap(), action);
    // deploymentBase of an action being canceled is 404 (follow the cancel link)
    let r = ddi(&app, Method::GET, "dev-3", &format!("/deploymentBase/{action}"), Some(&auth), None).await;
    assert_eq!(r.status, 404);
    // cancel feedback `canceled` is only a warning
    cancel.send_feedback(Execution::Canceled, Finished::None, vec![]).await.unwrap();
    assert_eq!(app.session(&session).await.body["state"], "created");
    cancel.send_feedback(Execution::Closed, Finished::Success, vec!["stopped"]).await.expect("cancel confirmed");

    let s = app.session(&session).await.expect(200);
    assert_eq!(s.body["state"], "fail");
    assert_eq!(s.body["payload"]["reason"], "canceled");
    let poll = ddi(&app, Method::GET, "dev-3", "", Some(&auth), None).await.expect(200);
    assert!(poll.body.get("_links").is_none_or(|l| l.get("cancelAction").is_none()), "{poll:?}");
    // a repeated confirmation (its first answer lost) is answered, and changes nothing
    let again = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let r =
        ddi(&app, Method::POST, "dev-3", &format!("/cancelAction/{action}/feedback"), Some(&auth), Some(again)).await;
    assert_eq!(r.status, 200);
    ddi(&app, Method::GET, "dev-3", &format!("/cancelAction/{action}"), Some(&auth), None).await.expect(200);
    assert_eq!(app.session(&session).await.body["state"], "fail");
    let kinds = app.event_kinds(&session).await;
    assert!(kinds.contains(&"device:CANCELED".to_owned()) && kinds.contains(&"device:WARNING".to_owned()), "{kinds:?}");
}

async fn a_new_assignment_supersedes_the_open_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let newer = app.firmware("1.2.0", pseudo_random(4096, 45), true).await;
    let (device_id, token) = device(&app, "dev-4").await;
    let auth = format!("TargetToken {token}");
    let (old, old_action) = assign(&app, &fw, json!({"devices": ["dev-4"]})).await.remove(0);
    app.wait_for_state(&old, &["created"]).await;
    let (new, new_action) = assign(&app, &newer, json!({"channel": "BAADFOOD"})).await.remove(0);
    app.wait_for_state(&new, &["created"]).await;

    // the device first sees the old action's cancel, then the new deployment
    let poll = ddi(&app, Method::GET, "dev-4", "", Some(&auth), None).await.expect(200);
    let href = poll.body["_links"]["cancelAction"]["href"].as_str().expect("cancel of the old action first").to_owned();
    assert!(href.ends_with(&format!("/cancelAction/{old_action}")), "{href}");
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    ddi(&app, Method::POST, "dev-4", &format!("/cancelAction/{old_action}/feedback"), Some(&auth), Some(closed))
        .await
        .expect(200);
    let poll = ddi(&app, Method::GET, "dev-4", "", Some(&auth), None).await.expect(200);
    let href = poll.body["_links"]["deploymentBase"]["href"].as_str().expect("then the new deployment").to_owned();
    assert!(href.contains(&format!("/deploymentBase/{new_action}?c=")), "{href}");
    assert_eq!(app.session(&old).await.body["state"], "fail");
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let r =
        ddi(&app, Method::POST, "dev-4", &format!("/cancelAction/{new_action}/feedback"), Some(&auth), Some(closed))
            .await;
    assert_eq!(r.status, 405, "the new action is not being canceled");

    // a third assignment asks the device to cancel the second, which it may be installing
    let third = app.firmware("1.3.0", pseudo_random(4096, 46), true).await;
    let named_twice = assign(&app, &third, json!({"attributes": {}, "devices": [device_id.clone()]})).await;
    assert_eq!(named_twice.len(), 1, "one session per device, however it is named");
    let history = app.get(&format!("/api/v1/devices/{device_id}/sessions")).await.expect(200);
    let second = history.body["results"].as_array().unwrap().iter().find(|e| e["id"] == new.as_str()).cloned().unwrap();
    assert_eq!(second["state"], "created");
    assert_eq!(second["action"]["cancel_requested"], true);
}

async fn consent_and_auto_confirm(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    app.patch("/api/v1/products/P1", json!({"ddi": {"confirmation_required": true}})).await.expect(200);
    let (_, token) = device(&app, "dev-5").await;
    let auth = format!("TargetToken {token}");
    let dev = client(&app, "dev-5", ClientAuthorization::TargetToken(token.clone()));
    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-5"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;

    let reply = dev.poll().await.unwrap();
    assert!(reply.update().is_none(), "no deployment before consent");
    let request = reply.confirmation_base().expect("consent asked");
    assert_eq!(request.update_info().await.unwrap().action_id(), action);
    let r = ddi(&app, Method::GET, "dev-5", &format!("/deploymentBase/{action}"), Some(&auth), None).await;
    assert_eq!(r.status, 404, "deploymentBase waits for consent");
    let base = ddi(&app, Method::GET, "dev-5", "/confirmationBase", Some(&auth), None).await.expect(200);
    assert_eq!(base.body["autoConfirm"]["active"], false);
    assert!(
        base.body["_links"]["confirmationBase"]["href"]
            .as_str()
            .unwrap()
            .contains(&format!("/confirmationBase/{action}?c="))
    );

    // denial keeps the action waiting; consent releases it
    request.decline().await.expect("denied");
    let request = dev.poll().await.unwrap().confirmation_base().expect("still waiting");
    request.confirm().await.expect("confirmed");
    let update = dev.poll().await.unwrap().update().expect("deployment after consent").fetch().await.unwrap();
    update.send_feedback(Execution::Closed, Finished::Success, vec![]).await.unwrap();
    assert_eq!(app.session(&session).await.body["state"], "success");

    // with auto-confirm on, the next assignment needs no consent
    let r = ddi(
        &app,
        Method::POST,
        "dev-5",
        "/confirmationBase/activateAutoConfirm",
        Some(&auth),
        Some(json!({"initiator": "alice", "remark": "ok"})),
    )
    .await
    .expect(200);
    assert_eq!(r.body, Value::Null, "200 with an empty body");
    let again = ddi(&app, Method::POST, "dev-5", "/confirmationBase/activateAutoConfirm", Some(&auth), None).await;
    assert_eq!(again.status, 409);
    let base = ddi(&app, Method::GET, "dev-5", "/confirmationBase", Some(&auth), None).await.expect(200);
    assert_eq!(base.body["autoConfirm"]["active"], true);
    assert_eq!(base.body["autoConfirm"]["initiator"], "alice");
    assert!(base.body["_links"]["deactivateAutoConfirm"].is_object());
    let newer = app.firmware("1.2.0", pseudo_random(4096, 47), true).await;
    let (next, _) = assign(&app, &newer, json!({"devices": ["dev-5"]})).await.remove(0);
    app.wait_for_state(&next, &["created"]).await;
    assert!(dev.poll().await.unwrap().update().is_some(), "auto-confirmed");
    ddi(&app, Method::POST, "dev-5", "/confirmationBase/deactivateAutoConfirm", Some(&auth), None).await.expect(200);
    let base = ddi(&app, Method::GET, "dev-5", "/confirmationBase", Some(&auth), None).await.expect(200);
    assert_eq!(base.body["autoConfirm"]["active"], false);
}

async fn wrong_or_missing_credentials_get_an_empty_401_on_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let gateway = gateway_on(&app).await;
    let (_, token) = device(&app, "dev-6").await;
    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-6"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    let base = ddi(
        &app,
        Method::GET,
        "dev-6",
        &format!("/deploymentBase/{action}"),
        Some(&format!("TargetToken {token}")),
        None,
    )
    .await
    .expect(200);
    let file = base.body["deployment"]["chunks"][0]["artifacts"][0]["filename"].as_str().unwrap().to_owned();

    let feedback = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}}});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, String::new(), None),
        (Method::PUT, "/configData".into(), Some(json!({"data": {"a": "b"}}))),
        (Method::GET, format!("/deploymentBase/{action}"), None),
        (Method::POST, format!("/deploymentBase/{action}/feedback"), Some(feedback.clone())),
        (Method::GET, format!("/cancelAction/{action}"), None),
        (Method::POST, format!("/cancelAction/{action}/feedback"), Some(feedback)),
        (Method::GET, format!("/installedBase/{action}"), None),
        (Method::PUT, "/installedBase".into(), Some(json!({"name": "x", "version": "1.1.0"}))),
        (Method::GET, "/confirmationBase".into(), None),
        (Method::GET, format!("/confirmationBase/{action}"), None),
        (Method::POST, format!("/confirmationBase/{action}/feedback"), Some(json!({"confirmation": "confirmed"}))),
        (Method::POST, "/confirmationBase/activateAutoConfirm".into(), None),
        (Method::POST, "/confirmationBase/deactivateAutoConfirm".into(), None),
        (Method::GET, format!("/softwaremodules/{action}/artifacts"), None),
        (Method::GET, format!("/softwaremodules/{action}/artifacts/{file}"), None),
        (Method::GET, format!("/softwaremodules/{action}/artifacts/{file}.MD5SUM"), None),
    ];
    let wrong = [
        ("P1", None),
        ("P1", Some("TargetToken not-the-token".to_owned())),
        ("P1", Some(format!("GatewayToken {ADMIN_TOKEN}x"))),
        ("P1", Some(format!("Token {token}"))),
        ("P1", Some(format!("targettoken {token}"))),
        // right credentials, unknown tenant
        ("OTHER", Some(format!("GatewayToken {gateway}"))),
        ("OTHER", Some(format!("TargetToken {token}"))),
    ];
    for (tenant, auth) in &wrong {
        for (method, tail, body) in &routes {
            let mut req = app.client.request(method.clone(), app.url(&format!("/{tenant}/controller/v1/dev-6{tail}")));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {tenant} {tail} with {auth:?}");
            assert!(r.headers().get("www-authenticate").is_none(), "{method} {tail}");
            assert!(r.bytes().await.unwrap().is_empty(), "{method} {tail}: 401 has an empty body");
        }
    }
    // a target token only speaks for its own device
    let (_, other_token) = device(&app, "dev-7").await;
    let r = ddi(&app, Method::GET, "dev-6", "", Some(&format!("TargetToken {other_token}")), None).await;
    assert_eq!(r.status, 401);
    // switched off per product, even the right target token is refused
    app.patch("/api/v1/products/P1", json!({"ddi": {"target_token_auth": false}})).await.expect(200);
    let r = ddi(&app, Method::GET, "dev-6", "", Some(&format!("TargetToken {token}")), None).await;
    assert_eq!(r.status, 401);
    // a target token cannot register an unknown device; nothing was created
    let r = ddi(&app, Method::GET, "ghost", "", Some(&format!("TargetToken {token}")), None).await;
    assert_eq!(r.status, 401);
    let listed = app.get("/api/v1/devices?device_id=ghost").await.expect(200);
    assert_eq!(listed.body["results"], json!([]));
    // rotating the token retires the old one
    app.patch("/api/v1/products/P1", json!({"ddi": {"target_token_auth": true}})).await.expect(200);
    let dev6 = app.get("/api/v1/devices?device_id=dev-6").await.body["results"][0]["id"].as_str().unwrap().to_owned();
    let rotated = app.post(&format!("/api/v1/devices/{dev6}/target-token"), json!({})).await.expect(200);
    let new_token = rotated.body["target_token"].as_str().unwrap().to_owned();
    assert_eq!(ddi(&app, Method::GET, "dev-6", "", Some(&format!("TargetToken {token}")), None).await.status, 401);
    ddi(&app, Method::GET, "dev-6", "", Some(&format!("TargetToken {new_token}")), None).await.expect(200);
}

async fn protocol_details_of_the_easy_to_get_wrong_list(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some(url::Url::parse("https://fw.example.com/hub/").unwrap());
        s.ddi_default_product = Some("P1".into());
    })
    .await;
    let (fw, image) = fleet(&app).await;
    let (_, token) = device(&app, "dev-8").await;
    let auth = format!("TargetToken {token}");
    let get = |tail: String| {
        app.client.get(app.url(&format!("/P1/controller/v1/dev-8{tail}"))).header("Authorization", auth.clone())
    };

    // 1. sleep is HH:MM:SS, never a day or more
    let poll = ddi(&app, Method::GET, "dev-8", "", Some(&auth), None).await.expect(200);
    assert_eq!(poll.body["config"]["polling"]["sleep"], "00:05:00");
    app.patch("/api/v1/products/P1", json!({"ddi": {"polling_secs": 86400}})).await.expect_error(400, "invalid");
    app.patch("/api/v1/products/P1", json!({"ddi": {"polling_secs": 86399}})).await.expect(200);
    let poll = ddi(&app, Method::GET, "dev-8", "", Some(&auth), None).await.expect(200);
    assert_eq!(poll.body["config"]["polling"]["sleep"], "23:59:59");

    // 2. HAL: absolute links from the public URL; hal+json by default, json and cbor on request, 406 else
    assert!(poll.headers["content-type"].to_str().unwrap().starts_with("application/hal+json"));
    assert_eq!(
        poll.body["_links"]["configData"]["href"],
        "https://fw.example.com/hub/P1/controller/v1/dev-8/configData"
    );
    let json_reply = get(String::new()).header("Accept", "application/json;charset=UTF-8").send().await.unwrap();
    assert!(json_reply.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let cbor_reply = get(String::new()).header("Accept", "application/cbor").send().await.unwrap();
    assert_eq!(cbor_reply.headers()["content-type"], "application/cbor");
    let decoded: Value = ciborium::from_reader(&cbor_reply.bytes().await.unwrap()[..]).unwrap();
    assert_eq!(decoded["config"]["polling"]["sleep"], "23:59:59");
    assert_eq!(get(String::new()).header("Accept", "text/html").send().await.unwrap().status(), 406);
    // the DEFAULT tenant is the configured default product; tenants match case-insensitively
    let r =
        app.client.get(app.url("/DEFAULT/controller/v1/dev-8")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/p1/controller/v1/dev-8")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // poll ETag → 304
    let etag = poll.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("\"0") && etag.len() == 35, "{etag}");
    let r = get(String::new()).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);

    // 3 + 4. configData: 200 with an empty body, legacy fields and "mode": null ignored
    let legacy = json!({"id": "", "time": "20260101T120000", "status": {"execution": "closed", "result": {"finished": "success"}, "details": []}, "mode": null, "data": {"VIN": "JH4TB2H26CC000000"}});
    let r = ddi(&app, Method::PUT, "dev-8", "/configData", Some(&auth), Some(legacy)).await.expect(200);
    assert_eq!(r.body, Value::Null);
    let r = app
        .client
        .put(app.url("/P1/controller/v1/dev-8/configData"))
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let put_raw = |body: Vec<u8>| {
        app.client
            .put(app.url("/P1/controller/v1/dev-8/configData"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let r = Resp::from(put_raw(b"{\"data\": {".to_vec()).await.unwrap()).await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"), "{r:?}");
    let r = Resp::from(put_raw(vec![b' '; 2 * 1024 * 1024]).await.unwrap()).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"), "{r:?}");
    let r = ddi(&app, Method::PUT, "dev-8", "/configData", Some(&auth), Some(json!({"mode": "sideways", "data": {}})))
        .await;
    assert_eq!(r.status, 400);

    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-8"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    let base =
        ddi(&app, Method::GET, "dev-8", &format!("/deploymentBase/{action}?c=-12&actionHistory=-1"), Some(&auth), None)
            .await
            .expect(200);
    // 9. ids are strings that fit 32 bits
    let id = base.body["id"].as_str().expect("the action id is a string");
    assert!(id.parse::<i32>().is_ok_and(|n| n > 0), "{id}");
    // 10. hashes and handling always present
    let deployment = &base.body["deployment"];
    assert_eq!(deployment["download"], "forced");
    assert_eq!(deployment["update"], "forced");
    let artifact = &deployment["chunks"][0]["artifacts"][0];
    let sha1 = artifact["hashes"]["sha1"].as_str().unwrap().to_owned();
    assert_eq!(sha1.len(), 40);
    assert_eq!(artifact["hashes"]["md5"].as_str().unwrap().len(), 32);
    assert_eq!(artifact["hashes"]["sha256"].as_str().unwrap(), crate::helpers::sha256_hex(&image));
    let links = &artifact["_links"];
    assert_eq!(links["download"], links["download-http"]);
    let download = links["download"]["href"].as_str().unwrap();
    assert!(download.starts_with("https://fw.example.com/hub/P1/controller/v1/dev-8/softwaremodules/"), "{download}");
    let file_tail = download.trim_start_matches("https://fw.example.com/hub/P1/controller/v1/dev-8").to_owned();

    // 4. feedback with legacy id/time and unknown fields; 200 empty
    let legacy = json!({"id": 8, "time": "20260101T120000", "extra": true, "status": {"execution": "proceeding", "result": {"finished": "none", "progress": {"cnt": 1, "of": 3}}, "code": 7}});
    let r = ddi(&app, Method::POST, "dev-8", &format!("/deploymentBase/{action}/feedback"), Some(&auth), Some(legacy))
        .await
        .expect(200);
    assert_eq!(r.body, Value::Null);
    let missing = json!({"status": {"execution": "proceeding", "result": {}}});
    let r = ddi(&app, Method::POST, "dev-8", &format!("/deploymentBase/{action}/feedback"), Some(&auth), Some(missing))
        .await;
    assert_eq!(r.status, 400);
    let many: Vec<String> = (0..51).map(|i| format!("m{i}")).collect();
    let crowded = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}, "details": many}});
    let r = ddi(&app, Method::POST, "dev-8", &format!("/deploymentBase/{action}/feedback"), Some(&auth), Some(crowded))
        .await;
    assert_eq!(r.status, 429, "at most 50 messages per report");
    assert!(!app.events(&session).await.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("m50"))));
    let nul = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}, "details": ["a\u{0}b"]}});
    let r =
        ddi(&app, Method::POST, "dev-8", &format!("/deploymentBase/{action}/feedback"), Some(&auth), Some(nul)).await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = app.client.get(app.url("/P%001/controller/v1/dev-8")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(ddi(&app, Method::GET, "dev-8", "/deploymentBase/abc", Some(&auth), None).await.status, 400);
    assert_eq!(ddi(&app, Method::GET, "dev-8", "/deploymentBase/999999", Some(&auth), None).await.status, 404);
    assert_eq!(ddi(&app, Method::DELETE, "dev-8", "/configData", Some(&auth), None).await.status, 405);

    // 7. ETag is the quoted sha1; If-Match takes it bare or quoted
    let r = get(file_tail.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), format!("\"{sha1}\""));
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().len(), image.len());
    for good in [sha1.clone(), format!("\"{sha1}\""), "*".to_owned()] {
        assert_eq!(
            get(file_tail.clone()).header("If-Match", good.as_str()).send().await.unwrap().status(),
            200,
            "{good}"
        );
    }
    assert_eq!(get(file_tail.clone()).header("If-Match", "\"0000\"").send().await.unwrap().status(), 412);

    // 8. ranges write no events; the full download above wrote one
    for i in 0..20u64 {
        let r = get(file_tail.clone())
            .header("Range", format!("bytes={}-{}", i * 1000, i * 1000 + 999))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap()[..], image[(i * 1000) as usize..(i * 1000 + 1000) as usize]);
    }
    let r = get(file_tail.clone()).header("Range", format!("bytes={}-", image.len())).send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes */{}", image.len()));
    let downloads = app.event_kinds(&session).await.iter().filter(|k| *k == "server:DOWNLOAD").count();
    assert_eq!(downloads, 4, "the full GET and three If-Match GETs, no range");

    // MD5SUM
    let r = get(format!("{file_tail}.MD5SUM")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let md5 = artifact["hashes"]["md5"].as_str().unwrap();
    let name = artifact["filename"].as_str().unwrap();
    assert_eq!(r.text().await.unwrap(), format!("{md5}  {name}"));
    let downloads = app.event_kinds(&session).await.iter().filter(|k| *k == "server:DOWNLOAD").count();
    assert_eq!(downloads, 5, "the checksum file is logged like a download, as hawkBit does");
    // the artifact list
    let module = file_tail.split('/').nth(2).unwrap().to_owned();
    let list = ddi(&app, Method::GET, "dev-8", &format!("/softwaremodules/{module}/artifacts"), Some(&auth), None)
        .await
        .expect(200);
    assert_eq!(list.body[0]["filename"], name);
    assert_eq!(list.body[0]["size"], image.len());
}

async fn config_data_merges_replaces_and_removes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    fleet(&app).await;
    let (device_id, token) = device(&app, "dev-9").await;
    let dev = client(&app, "dev-9", ClientAuthorization::TargetToken(token.clone()));
    let auth = format!("TargetToken {token}");
    let attributes =
        || async { app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200).body["attributes"].clone() };

    let config = dev.poll().await.unwrap().config_data_request().expect("asked");
    config.upload(Execution::Closed, Finished::Success, None, json!({"a": "1", "b": "2"}), vec![]).await.unwrap();
    assert_eq!(attributes().await, json!({"a": "1", "b": "2"}));
    let put = |body: Value| ddi(&app, Method::PUT, "dev-9", "/configData", Some(&auth), Some(body));
    put(json!({"mode": "merge", "data": {"b": "3", "c": "4"}})).await.expect(200);
    assert_eq!(attributes().await, json!({"a": "1", "b": "3", "c": "4"}));
    put(json!({"mode": "remove", "data": {"a": ""}})).await.expect(200);
    assert_eq!(attributes().await, json!({"b": "3", "c": "4"}));
    put(json!({"mode": "replace", "data": {"z": "9"}})).await.expect(200);
    assert_eq!(attributes().await, json!({"z": "9"}));
    // invalid attributes change nothing
    let long = "x".repeat(129);
    assert_eq!(put(json!({"data": {long: "1"}})).await.status, 400);
    assert_eq!(put(json!({"data": {"ü": "1"}})).await.status, 400);
    assert_eq!(attributes().await, json!({"z": "9"}));
}

async fn action_types_and_maintenance_windows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let (device_id, token) = device(&app, "dev-10").await;
    let dev = client(&app, "dev-10", ClientAuthorization::TargetToken(token.clone()));

    // soft, outside its maintenance window: download when convenient, do not install yet
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let window = json!({"start": later.to_rfc3339(), "end": (later + chrono::Duration::hours(1)).to_rfc3339()});
    let body = json!({"devices": ["dev-10"], "action_type": "soft", "maintenance_window": window});
    let (soft, _) = assign(&app, &fw, body).await.remove(0);
    app.wait_for_state(&soft, &["created"]).await;
    let update = dev.poll().await.unwrap().update().expect("deployment").fetch().await.unwrap();
    assert_eq!(update.download_type(), Type::Attempt);
    assert_eq!(update.update_type(), Type::Skip);
    assert!(matches!(update.maintenance_window(), Some(hawkbit::ddi::MaintenanceWindow::Unavailable)));
    // the session waits for the device's result at least until its window has closed
    let expires = app.session(&soft).await.body["expiration_time"].as_str().unwrap().to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    assert!(expires > later + chrono::Duration::hours(1), "{expires} is before the window closes");
    let past = chrono::Utc::now() - chrono::Duration::hours(2);
    let ended = json!({"start": past.to_rfc3339(), "end": (past + chrono::Duration::hours(1)).to_rfc3339()});
    let r = app
        .post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["dev-10"], "maintenance_window": ended}))
        .await;
    r.expect_error(400, "invalid");
    // a window that ends before it starts is refused
    let bad =
        json!({"devices": ["dev-10"], "maintenance_window": {"start": later.to_rfc3339(), "end": later.to_rfc3339()}});
    app.post(&format!("/api/v1/firmware/{fw}/assign"), bad).await.expect_error(400, "invalid");
    app.post(&format!("/api/v1/firmware-update/{soft}/cancel"), json!({})).await.expect(200);
    let cancel = dev.poll().await.unwrap().cancel_action().expect("cancel offered");
    cancel.send_feedback(Execution::Closed, Finished::Success, vec![]).await.unwrap();

    let config = dev.poll().await.unwrap().config_data_request().expect("attributes asked");
    config.upload(Execution::Closed, Finished::Success, None, json!({"a": "1"}), vec![]).await.unwrap();
    // download-only: `downloaded` ends it, and the device still runs its old version
    let (only, _) = assign(&app, &fw, json!({"devices": ["dev-10"], "action_type": "download_only"})).await.remove(0);
    app.wait_for_state(&only, &["created"]).await;
    let update = dev.poll().await.unwrap().update().expect("deployment").fetch().await.unwrap();
    assert_eq!(update.download_type(), Type::Forced);
    assert_eq!(update.update_type(), Type::Skip);
    update.send_feedback(Execution::Downloaded, Finished::Success, vec![]).await.unwrap();
    assert_eq!(app.session(&only).await.body["state"], "success");
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["installed_version"], "1.0.0");
    assert!(dev.poll().await.unwrap().config_data_request().is_some(), "attributes asked again after DOWNLOADED");
    // an unknown action type changes nothing
    let r = app
        .post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": ["dev-10"], "action_type": "timeforced"}))
        .await;
    r.expect_error(400, "invalid");
}

async fn assignments_pick_devices_by_attributes_and_obey_the_queue_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.queue_limit = 1).await;
    let (fw, _) = fleet(&app).await;
    for (id, revision) in [("dev-a", "2"), ("dev-b", "3"), ("dev-c", "2")] {
        let (_, token) = device(&app, id).await;
        let body = json!({"data": {"hwRevision": revision}});
        ddi(&app, Method::PUT, id, "/configData", Some(&format!("TargetToken {token}")), Some(body)).await.expect(200);
    }
    let picked = app
        .post(&format!("/api/v1/firmware/{fw}/assign"), json!({"attributes": {"hwRevision": "2"}}))
        .await
        .expect(201);
    let sessions = picked.body["sessions"].as_array().unwrap();
    let mut devices: Vec<String> = Vec::new();
    for s in sessions {
        let d = app.get(&format!("/api/v1/devices/{}", s["device"].as_str().unwrap())).await.expect(200);
        devices.push(d.body["device_id"].as_str().unwrap().to_owned());
    }
    devices.sort();
    assert_eq!(devices, ["dev-a", "dev-c"], "only the devices whose attributes match");
    // the queue holds one job: the second device's session fails like a device's /start would
    let states: Vec<&str> = sessions.iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "fail").count(), 1, "{states:?}");
    let failed = sessions.iter().find(|s| s["state"] == "fail").unwrap();
    assert!(failed["payload"]["reason"].as_str().unwrap().contains("queue is full"), "{failed}");
}

async fn refused_cancel_installed_base_and_the_gateway_switch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let (device_id, token) = device(&app, "dev-11").await;
    let auth = format!("TargetToken {token}");
    let dev = client(&app, "dev-11", ClientAuthorization::TargetToken(token.clone()));

    // gateway tokens are off by default: a device-role token is refused until switched on
    let product = app.get("/api/v1/products/P1").await.expect(200);
    assert_eq!(product.body["ddi"]["gateway_token_auth"], false);
    let gateway = app.user_with_role("gw", Some("device"), Some(&product.id())).await;
    assert_eq!(ddi(&app, Method::GET, "dev-11", "", Some(&format!("GatewayToken {gateway}")), None).await.status, 401);

    // a device that refuses the cancel goes on with the update
    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-11"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    app.post(&format!("/api/v1/firmware-update/{session}/cancel"), json!({})).await.expect(200);
    let cancel = dev.poll().await.unwrap().cancel_action().expect("cancel offered");
    cancel.send_feedback(Execution::Rejected, Finished::None, vec!["busy flashing"]).await.unwrap();
    let update = dev.poll().await.unwrap().update().expect("the deployment is offered again").fetch().await.unwrap();
    assert_eq!(update.action_id(), action);
    assert!(app.event_kinds(&session).await.contains(&"device:CANCEL_REJECTED".to_owned()));
    update.send_feedback(Execution::Closed, Finished::Success, vec![]).await.unwrap();
    assert_eq!(app.session(&session).await.body["state"], "success");

    // installedBase describes the installed action; an offline install replaces it
    let base =
        ddi(&app, Method::GET, "dev-11", &format!("/installedBase/{action}"), Some(&auth), None).await.expect(200);
    assert_eq!(base.body["id"], action.as_str());
    assert_eq!(base.body["deployment"]["chunks"][0]["version"], "1.1.0");
    let newer = app.firmware("1.2.0", pseudo_random(1000, 48), true).await;
    let r = ddi(
        &app,
        Method::PUT,
        "dev-11",
        "/installedBase",
        Some(&auth),
        Some(json!({"name": "CAFEBABE", "version": "1.2.0"})),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = ddi(
        &app,
        Method::PUT,
        "dev-11",
        "/installedBase",
        Some(&auth),
        Some(json!({"name": "CAFEBABE", "version": "1.2.0"})),
    )
    .await;
    assert_eq!(r.status, 200, "already installed");
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["installed_firmware"], newer.as_str());
    let poll = ddi(&app, Method::GET, "dev-11", "", Some(&auth), None).await.expect(200);
    assert!(poll.body["_links"].get("installedBase").is_none(), "{poll:?}");
    assert_eq!(
        ddi(&app, Method::GET, "dev-11", &format!("/installedBase/{action}"), Some(&auth), None).await.status,
        404
    );
}

/// Issue 9, defect 3: tenants are product handles matched ignoring case, and `DEFAULT` is
/// the configured default product, so no product may take `default` or another's handle
/// in another case.
async fn a_product_admin_cannot_take_another_products_tenant(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.ddi_default_product = Some("B".into())).await;
    let a = app.post("/api/v1/products", json!({"tid": "A", "name": "a"})).await.expect(201).id();
    app.post("/api/v1/products", json!({"tid": "B", "name": "b"})).await.expect(201);
    let r = app.post("/api/v1/devices", json!({"device_id": "b-1", "product": "B"})).await.expect(201);
    let auth = format!("TargetToken {}", r.body["target_token"].as_str().unwrap());
    let admin_of_a = app.user_with_role("a-admin", Some("admin"), Some(&a)).await;
    let polls = |tenant: &'static str| {
        let req = app.client.get(app.url(&format!("/{tenant}/controller/v1/b-1"))).header("Authorization", &auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for tenant in ["B", "b", "DEFAULT", "default"] {
        assert_eq!(polls(tenant).await, 200, "{tenant} before");
    }

    let path = format!("/api/v1/products/{a}");
    let rename = |tid: &str| app.call(Method::PATCH, &path, Some(&admin_of_a), Some(json!({"tid": tid})));
    // `default` in any case is reserved, on create and on rename
    for tid in ["default", "DEFAULT", "Default"] {
        rename(tid).await.expect_error(409, "reserved_handle");
        app.post("/api/v1/products", json!({"tid": tid, "name": "x"})).await.expect_error(409, "reserved_handle");
    }
    // handles are unique ignoring case
    for tid in ["b", "B"] {
        rename(tid).await.expect_error(409, "already_exists");
    }
    app.post("/api/v1/products", json!({"tid": "a", "name": "x"})).await.expect_error(409, "already_exists");
    // a product may change the case of its own handle
    assert_eq!(rename("a").await.expect(200).body["tid"], "a");

    for tenant in ["B", "b", "DEFAULT", "default"] {
        assert_eq!(polls(tenant).await, 200, "{tenant} after");
    }
    assert_eq!(app.get("/api/v1/products/B").await.expect(200).body["tid"], "B");
}

/// Sends a request's head and the first `sent` bytes of a body of `length` bytes, then sends
/// nothing more and reads the answer's status line and head (or fails after 5 s).
async fn trickle(app: &TestApp, head: &str, length: usize, sent: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let request =
        format!("{head}Host: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the connection without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    };
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    assert!(waited.is_ok(), "no answer while the body was incomplete: {head}");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_default();
    (status, answer)
}

/// Issue 9, defect 7: a DDI request without valid credentials is refused from its headers,
/// before (and without) its body, like the admin API does; the 401 stays empty.
async fn credentials_are_checked_before_the_body_is_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (fw, _) = fleet(&app).await;
    let (_, token) = device(&app, "dev-12").await;
    let (session, action) = assign(&app, &fw, json!({"devices": ["dev-12"]})).await.remove(0);
    app.wait_for_state(&session, &["created"]).await;
    let routes = [
        "PUT /{tenant}/controller/v1/dev-12/configData".to_owned(),
        format!("POST /{{tenant}}/controller/v1/dev-12/deploymentBase/{action}/feedback"),
        format!("POST /{{tenant}}/controller/v1/dev-12/cancelAction/{action}/feedback"),
        "PUT /{tenant}/controller/v1/dev-12/installedBase".to_owned(),
        format!("POST /{{tenant}}/controller/v1/dev-12/confirmationBase/{action}/feedback"),
        "POST /{tenant}/controller/v1/dev-12/confirmationBase/activateAutoConfirm".to_owned(),
    ];
    let wrong = [
        ("P1", String::new()),
        ("P1", "Authorization: TargetToken not-the-token\r\n".to_owned()),
        ("P1", format!("Authorization: Token {ADMIN_TOKEN}\r\n")),
        ("UNKNOWN", String::new()),
        ("UNKNOWN", format!("Authorization: TargetToken {token}\r\n")),
    ];
    for route in &routes {
        for (tenant, auth) in &wrong {
            let head = format!("{} HTTP/1.1\r\n{auth}", route.replace("{tenant}", tenant));
            let (status, answer) = trickle(&app, &head, 100, b"{").await;
            assert_eq!(status, 401, "{head}: {answer}");
            assert!(answer.to_ascii_lowercase().contains("content-length: 0"), "an empty 401: {answer}");
        }
    }
    // the device itself still gets its body read
    let body = br#"{"data": {"hwRevision": "3"}}"#;
    let head = format!("PUT /P1/controller/v1/dev-12/configData HTTP/1.1\r\nAuthorization: TargetToken {token}\r\n");
    let (status, answer) = trickle(&app, &head, body.len(), body).await;
    assert_eq!(status, 200, "{answer}");
}

/// Issue 9, defect 7: a device's body must arrive within `ddi_body_timeout_secs` (408 after).
async fn a_body_that_never_arrives_times_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.ddi_body_timeout_secs = 1).await;
    app.seed_catalog().await;
    let (_, token) = device(&app, "dev-13").await;
    let head = format!("PUT /P1/controller/v1/dev-13/configData HTTP/1.1\r\nAuthorization: TargetToken {token}\r\n");
    let started = std::time::Instant::now();
    let (status, answer) = trickle(&app, &head, 100, b"{").await;
    assert_eq!(status, 408, "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "not before the limit");
    assert!(answer.contains("application/json"), "a JSON error: {answer}");
}
