//! The rights matrix: every role against every resource family, reading and writing,
//! and 401 for missing or wrong tokens everywhere.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(roles_on_every_resource_family, tokens_are_required_everywhere);

#[derive(Clone, Copy)]
struct Case {
    family: &'static str,
    method: &'static str,
    path: &'static str,
    /// Expected status for: admin, maintainer P1, viewer P1, device P1, no grants, maintainer P2.
    expect: [u16; 6],
}

const ROLES: [&str; 6] = ["admin", "maintainer on P1", "viewer on P1", "device on P1", "no grants", "maintainer on P2"];

fn cases() -> Vec<Case> {
    let c = |family, method, path, expect| Case { family, method, path, expect };
    vec![
        c("products", "GET", "/api/v1/products/P1", [200, 200, 200, 403, 403, 403]),
        c("products", "PATCH", "/api/v1/products/P1", [200, 403, 403, 403, 403, 403]),
        c("products", "POST", "/api/v1/products", [201, 403, 403, 403, 403, 403]),
        c("models", "GET", "/api/v1/models/CAFEBABE", [200, 200, 200, 403, 403, 403]),
        c("models", "POST", "/api/v1/models", [201, 201, 403, 403, 403, 403]),
        c("channels", "GET", "/api/v1/channels/BAADFOOD", [200, 200, 200, 403, 403, 403]),
        c("channels", "POST", "/api/v1/channels", [201, 201, 403, 403, 403, 403]),
        c("delivery-methods", "GET", "/api/v1/delivery-methods/DEADBEEF", [200, 200, 200, 200, 403, 200]),
        c("delivery-methods", "POST", "/api/v1/delivery-methods", [201, 403, 403, 403, 403, 403]),
        c("delivery-procedures", "GET", "/api/v1/delivery-procedures/dp-handle", [200, 200, 200, 200, 403, 200]),
        c("delivery-procedures", "POST", "/api/v1/delivery-procedures", [201, 403, 403, 403, 403, 403]),
        c("firmware", "GET", "/api/v1/firmware/{fw}", [200, 200, 200, 403, 403, 403]),
        c("firmware", "POST", "/api/v1/firmware", [201, 201, 403, 403, 403, 403]),
        c("firmware", "POST", "/api/v1/firmware/{fw}/release", [200, 200, 403, 403, 403, 403]),
        c("devices", "GET", "/api/v1/devices/{dev}", [200, 200, 200, 403, 403, 403]),
        c("devices", "POST", "/api/v1/devices", [201, 201, 403, 403, 403, 403]),
        c("users", "GET", "/api/v1/users", [200, 403, 403, 403, 403, 403]),
        c("users", "POST", "/api/v1/users", [201, 403, 403, 403, 403, 403]),
        c("grants", "GET", "/api/v1/grants", [200, 403, 403, 403, 403, 403]),
        c("grants", "POST", "/api/v1/grants", [201, 403, 403, 403, 403, 403]),
        c("tokens", "GET", "/api/v1/users/admin/tokens", [200, 403, 403, 403, 403, 403]),
        c("tokens", "POST", "/api/v1/users/admin/tokens", [201, 403, 403, 403, 403, 403]),
    ]
}

/// A body that would succeed for a caller with the right; `n` keeps handles unique.
fn body(case: &Case, n: usize) -> Option<Value> {
    let tid = format!("x{n}");
    match (case.method, case.family) {
        ("GET", _) => None,
        (_, "products") if case.method == "PATCH" => Some(json!({"name": format!("renamed {n}")})),
        (_, "products") | (_, "delivery-methods") => Some(json!({"tid": tid, "name": "n"})),
        (_, "models") | (_, "channels") => Some(json!({"tid": tid, "name": "n", "product": "P1"})),
        (_, "delivery-procedures") => Some(json!({"tid": tid, "name": "n", "delivery_method": "DEADBEEF"})),
        (_, "firmware") if case.path.ends_with("release") => Some(json!({})),
        (_, "firmware") => Some(json!({"model": "CAFEBABE", "version": format!("9.0.{n}")})),
        (_, "devices") => Some(json!({"device_id": tid, "model": "CAFEBABE"})),
        (_, "users") => Some(json!({"username": tid})),
        (_, "grants") => Some(
            json!({"user": "admin", "product": "P1", "role": if n.is_multiple_of(2) { "viewer" } else { "device" }}),
        ),
        (_, "tokens") => Some(json!({"name": tid})),
        _ => None,
    }
}

async fn roles_on_every_resource_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201);
    let fw = app.firmware("1.0.0", vec![1, 2, 3], false).await;
    let dev = app.post("/api/v1/devices", json!({"device_id": "d1", "model": "CAFEBABE"})).await.expect(201).id();

    let tokens = [
        ADMIN_TOKEN.to_owned(),
        app.user_with_role("maint", Some("maintainer"), Some("P1")).await,
        app.user_with_role("viewer", Some("viewer"), Some("P1")).await,
        app.user_with_role("device", Some("device"), Some("P1")).await,
        app.user_with_role("nobody", None, None).await,
        app.user_with_role("other", Some("maintainer"), Some("P2")).await,
    ];

    let mut n = 0;
    let mut failures = Vec::new();
    for case in cases() {
        for (role, (token, expected)) in ROLES.iter().zip(tokens.iter().zip(case.expect)) {
            n += 1;
            let path = case.path.replace("{fw}", &fw).replace("{dev}", &dev);
            let method = Method::from_bytes(case.method.as_bytes()).unwrap();
            let r = app.call(method, &path, Some(token), body(&case, n)).await;
            let code_ok = expected != 403 || r.code() == "forbidden";
            if r.status != expected || !code_ok {
                failures.push(format!(
                    "{} {path} as {role}: expected {expected}, got {} {}",
                    case.method, r.status, r.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "rights matrix mismatches:\n{}", failures.join("\n"));

    // lists only show what a caller may read
    let p2_maint = &tokens[5];
    let listed = app.call(Method::GET, "/api/v1/products", Some(p2_maint), None).await.expect(200);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["results"][0]["tid"], "P2");
    let fw_list = app.call(Method::GET, "/api/v1/firmware", Some(p2_maint), None).await.expect(200);
    assert_eq!(fw_list.body["count"], 0);
}

async fn tokens_are_required_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/api/v1/products",
        "/api/v1/models",
        "/api/v1/channels",
        "/api/v1/delivery-methods",
        "/api/v1/delivery-procedures",
        "/api/v1/firmware",
        "/api/v1/devices",
        "/api/v1/users",
        "/api/v1/users/admin/tokens",
        "/api/v1/grants",
    ] {
        for token in [None, Some("dh_not_a_real_token"), Some("")] {
            let r = app.call(Method::GET, path, token, None).await.expect_error(401, "unauthorized");
            assert!(r.headers.get("www-authenticate").is_some(), "{path}");
        }
        // a wrong scheme is as good as none
        let r =
            app.client.get(app.url(path)).header("Authorization", format!("Basic {ADMIN_TOKEN}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        // writes too, and they change nothing
        app.call(Method::POST, path, None, Some(json!({"tid": "t", "name": "n"})))
            .await
            .expect_error(401, "unauthorized");
    }
    assert_eq!(app.get("/api/v1/products").await.body["count"], 0);
}
