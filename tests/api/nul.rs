//! Issue 9, defect 4: NUL and other control characters in names, handles and ids. One rule
//! on both backends (PostgreSQL cannot store NUL in text and answered 500; SQLite stored it):
//! NUL anywhere in a path, a query or a JSON body is `400 invalid`, and names, handles, ids
//! and usernames refuse control characters.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(nul_in_bodies_paths_and_queries_is_400, control_characters_in_names_are_refused);

async fn nul_in_bodies_paths_and_queries_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let dev = app.post("/api/v1/devices", json!({"device_id": "d1", "model": "CAFEBABE"})).await.expect(201).id();
    let viewer = app.user_with_role("viewer", Some("viewer"), Some("P1")).await;
    let nul = "a\u{0}b";

    let bodies: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/api/v1/products".into(), json!({"tid": nul, "name": "n"})),
        (Method::POST, "/api/v1/products".into(), json!({"tid": "P9", "name": nul})),
        (Method::PATCH, "/api/v1/products/P1".into(), json!({"name": nul})),
        (Method::PATCH, "/api/v1/products/P1".into(), json!({"tid": nul})),
        (Method::POST, "/api/v1/models".into(), json!({"tid": nul, "name": "n", "product": "P1"})),
        (Method::POST, "/api/v1/models".into(), json!({"tid": "M9", "name": nul, "product": "P1"})),
        (Method::POST, "/api/v1/models".into(), json!({"tid": "M9", "name": "n", "product": nul})),
        (Method::PATCH, "/api/v1/models/CAFEBABE".into(), json!({"name": nul})),
        (Method::POST, "/api/v1/channels".into(), json!({"tid": "C9", "name": nul, "product": "P1"})),
        (Method::PATCH, "/api/v1/channels/BAADFOOD".into(), json!({"name": nul})),
        (Method::POST, "/api/v1/delivery-methods".into(), json!({"tid": "D9", "name": nul})),
        (Method::PATCH, "/api/v1/delivery-methods/DEADBEEF".into(), json!({"name": nul})),
        (
            Method::POST,
            "/api/v1/delivery-procedures".into(),
            json!({"tid": "dp9", "name": nul, "delivery_method": "DEADBEEF"}),
        ),
        (Method::PATCH, "/api/v1/delivery-procedures/dp-handle".into(), json!({"name": nul})),
        (Method::POST, "/api/v1/devices".into(), json!({"device_id": nul, "model": "CAFEBABE"})),
        (Method::POST, "/api/v1/devices".into(), json!({"device_id": "d9", "model": "CAFEBABE", "name": nul})),
        (Method::PATCH, format!("/api/v1/devices/{dev}"), json!({"name": nul})),
        (Method::POST, "/api/v1/users".into(), json!({"username": nul})),
        (Method::POST, "/api/v1/users/me/tokens".into(), json!({"name": nul})),
        (Method::POST, "/api/v1/grants".into(), json!({"user": nul, "role": "viewer"})),
        (Method::POST, "/api/v1/firmware".into(), json!({"model": "CAFEBABE", "version": "1.0.0", "channels": [nul]})),
        // a NUL in a key, or in a field nobody reads, is refused all the same
        (Method::POST, "/api/v1/products".into(), json!({"tid": "P9", "name": "n", "a\u{0}": 1})),
        (Method::POST, "/api/v1/firmware-update/request".into(), json!({"model": "CAFEBABE", "device_id": nul})),
    ];
    for (method, path, body) in &bodies {
        let r = app.call(method.clone(), path, Some(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (400, "invalid"), "{method} {path} {body}: {r:?}");
    }

    let paths = [
        "/api/v1/users/a%00b",
        "/api/v1/users/a%00b/tokens",
        "/api/v1/grants/a%00b",
        "/api/v1/users/me/tokens/%00",
        "/api/v1/products/a%00b",
        "/api/v1/models/%00",
        "/api/v1/channels/%00",
        "/api/v1/delivery-methods/%00",
        "/api/v1/delivery-procedures/%00",
        "/api/v1/firmware/%00",
        "/api/v1/devices/%00",
        "/api/v1/firmware-update/%00",
        "/api/v1/devices?device_id=%00",
        "/api/v1/devices?product=%00",
        "/api/v1/grants?user=%00",
        "/api/v1/grants?product=a%00",
        "/api/v1/models?product=%00",
        "/api/v1/firmware?version=%00",
        "/api/v1/firmware-update?device=%00",
        "/api/v1/products?limit=1&x=%00",
    ];
    for path in paths {
        for token in [ADMIN_TOKEN, viewer.as_str()] {
            let r = app.call(Method::GET, path, Some(token), None).await;
            assert_eq!((r.status, r.code()), (400, "invalid"), "GET {path}: {r:?}");
        }
        let r = app.call(Method::DELETE, path, Some(ADMIN_TOKEN), None).await;
        assert_eq!((r.status, r.code()), (400, "invalid"), "DELETE {path}: {r:?}");
    }

    // nothing was stored
    assert_eq!(app.get("/api/v1/products").await.body["count"], 1);
    assert_eq!(app.get("/api/v1/users").await.body["count"], 2, "admin and viewer");
    assert_eq!(app.get("/api/v1/devices").await.body["count"], 1);
    assert_eq!(app.get("/api/v1/models/CAFEBABE").await.body["name"], "Model");
}

async fn control_characters_in_names_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    for bad in ["line\nbreak", "tab\there", "bell\u{7}", "del\u{7f}", "c1\u{85}"] {
        let cases = [
            ("/api/v1/products", json!({"tid": "P9", "name": bad})),
            ("/api/v1/models", json!({"tid": "M9", "name": bad, "product": "P1"})),
            ("/api/v1/delivery-methods", json!({"tid": "D9", "name": bad})),
            ("/api/v1/devices", json!({"device_id": "d9", "product": "P1", "name": bad})),
            ("/api/v1/users/me/tokens", json!({"name": bad})),
        ];
        for (path, body) in cases {
            app.post(path, body.clone()).await.expect_error(400, "invalid");
        }
    }
    // ordinary text, accents and inner spaces are fine
    app.post("/api/v1/products", json!({"tid": "P9", "name": "Capteur été 2"})).await.expect(201);
}
