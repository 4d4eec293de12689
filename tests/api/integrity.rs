//! A device gets exactly the bytes it was told: size and digests in the session payload
//! (and in the DDI deployment) are those of the object it downloads, even when identical
//! pipeline runs race each other on several workers.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use sha1::Digest;

use crate::helpers::{Backend, TestApp, pseudo_random, sha256_hex};

crate::on_both_backends!(identical_concurrent_runs_serve_what_they_advertise);

const IMAGE_LEN: usize = 4 * 1024 * 1024 + 3;
const SESSIONS: usize = 12;
const DEVICES: usize = 12;

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

/// The seed catalog with a gzip procedure and a released 1.1.0 whose image is `image`.
pub(crate) async fn gzip_catalog(app: &TestApp, image: Vec<u8>) -> String {
    app.seed_catalog().await;
    app.post(
        "/api/v1/delivery-procedures",
        json!({"tid": "dp-gzip", "name": "gzip", "delivery_method": "DEADBEEF", "confirm": true,
               "steps": [{"type": "gzip", "level": 6}]}),
    )
    .await
    .expect(201);
    app.firmware("1.1.0", image, true).await
}

async fn download(app: &TestApp, url: &str, auth: Option<&str>) -> Vec<u8> {
    let mut req = app.client.request(Method::GET, url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let r = req.send().await.expect("download");
    assert_eq!(r.status().as_u16(), 200);
    r.bytes().await.expect("body").to_vec()
}

async fn identical_concurrent_runs_serve_what_they_advertise(backend: Backend) {
    // the default: two workers, so identical jobs run side by side
    let app = TestApp::spawn_with(backend, |s| s.workers = 2).await;
    let image = pseudo_random(IMAGE_LEN, 91);
    let fw = gzip_catalog(&app, image).await;

    // the Leitwert door: request + start back to back, for several devices at once
    let mut sessions = Vec::new();
    for n in 0..SESSIONS {
        let mut body = crate::helpers::seed_request("1.0.0");
        body["device_id"] = json!(format!("dev-{n}"));
        body["delivery_procedure_tid"] = json!("dp-gzip");
        sessions.push(app.request_update(body).await.expect(201).id());
    }
    join_all(sessions.iter().map(|id| app.start_session(id))).await;
    for id in &sessions {
        let done = app.wait_for_state(id, &["created"]).await;
        let payload = &done.body["payload"];
        let link = payload["download_link"].as_str().expect("link");
        let bytes = download(&app, link, None).await;
        assert_eq!(bytes.len() as u64, payload["size"].as_u64().unwrap(), "session {id}: size");
        assert_eq!(sha256_hex(&bytes), payload["sha256"].as_str().unwrap(), "session {id}: sha256");
        assert_eq!(sha1_hex(&bytes), payload["sha1"].as_str().unwrap(), "session {id}: sha1");
    }

    // the DDI door: one assignment to many devices, each checks what its deployment says
    let mut tokens = Vec::new();
    for n in 0..DEVICES {
        let device_id = format!("ddi-{n}");
        let r = app
            .post(
                "/api/v1/devices",
                json!({"device_id": device_id, "model": "CAFEBABE", "channel": "BAADFOOD", "installed_version": "1.0.0"}),
            )
            .await
            .expect(201);
        tokens.push((r.id(), device_id, r.body["target_token"].as_str().unwrap().to_owned()));
    }
    let devices: Vec<&str> = tokens.iter().map(|(_, d, _)| d.as_str()).collect();
    let assigned = app
        .post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": devices, "delivery_procedure": "dp-gzip"}))
        .await
        .expect(201);
    let assigned = assigned.body["sessions"].as_array().unwrap().clone();
    assert_eq!(assigned.len(), DEVICES);
    for s in &assigned {
        let (session, action) = (s["id"].as_str().unwrap(), s["action"]["id"].as_str().unwrap());
        let (_, device_id, token) = tokens.iter().find(|(id, _, _)| s["device"] == id.as_str()).expect("device");
        app.wait_for_state(session, &["created"]).await;
        let auth = format!("TargetToken {token}");
        let base = app.url(&format!("/P1/controller/v1/{device_id}/deploymentBase/{action}"));
        let r = app.client.get(&base).header("Authorization", &auth).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{base}: {}", r.text().await.unwrap_or_default());
        let deployment: Value = r.json().await.unwrap();
        let artifact = &deployment["deployment"]["chunks"][0]["artifacts"][0];
        let href = artifact["_links"]["download-http"]["href"].as_str().expect("download link");
        let bytes = download(&app, href, Some(&auth)).await;
        assert_eq!(bytes.len() as u64, artifact["size"].as_u64().unwrap(), "device {device_id}: size");
        assert_eq!(sha1_hex(&bytes), artifact["hashes"]["sha1"].as_str().unwrap(), "device {device_id}: sha1");
        assert_eq!(sha256_hex(&bytes), artifact["hashes"]["sha256"].as_str().unwrap(), "device {device_id}: sha256");
    }
}
