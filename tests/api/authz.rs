//! Rights beyond the matrix (`authz_matrix.rs`, generated from the route table): the 401
//! details for missing or wrong tokens, and that what a caller may not see answers exactly
//! like what does not exist.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(tokens_are_required_everywhere, what_a_caller_may_not_see_answers_like_what_does_not_exist,);

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

/// Asks the same thing about an object that exists and one that does not; the answers
/// (status, code, and detail but for the name) must be the same.
async fn same_answer(
    app: &TestApp,
    token: &str,
    method: Method,
    (path, body): (&str, Option<Value>),
    unknown: (&str, Option<Value>),
    names: (&str, &str),
) -> u16 {
    let a = app.call(method.clone(), path, Some(token), body).await;
    let b = app.call(method.clone(), unknown.0, Some(token), unknown.1).await;
    let detail =
        |r: &crate::helpers::Resp, name: &str| r.body["detail"].as_str().unwrap_or_default().replace(name, "NAME");
    assert_eq!(
        (a.status, a.code(), detail(&a, names.0)),
        (b.status, b.code(), detail(&b, names.1)),
        "{method} {path} vs {}: the answers tell them apart",
        unknown.0
    );
    a.status
}

/// Issue 9, defect 13: 403 for what exists but may not be seen, 404 for what does not exist,
/// told any authenticated user which usernames, products, models, ... exist. What a caller
/// may not see answers exactly like what does not exist; 403 stays for what it may see but
/// not change.
async fn what_a_caller_may_not_see_answers_like_what_does_not_exist(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let fw = app.firmware("1.0.0", vec![1, 2, 3], false).await;
    let dev = app.post("/api/v1/devices", json!({"device_id": "d1", "model": "CAFEBABE"})).await.expect(201).id();
    let p2 = app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201).id();
    let viewer = app.user_with_role("viewer", Some("viewer"), Some("P1")).await;
    let other = app.user_with_role("other", Some("maintainer"), Some(&p2)).await;
    let nobody = app.user_with_role("nobody", None, None).await;
    let ghost_fw = uuid::Uuid::new_v4().to_string();
    let ghost_dev = uuid::Uuid::new_v4().to_string();
    let get = Method::GET;
    let patch = Method::PATCH;
    let delete = Method::DELETE;
    let post = Method::POST;

    for token in [&viewer, &other, &nobody] {
        // people
        let u = |p: &'static str| (p, None);
        assert_eq!(
            same_answer(
                &app,
                token,
                get.clone(),
                u("/api/v1/users/admin"),
                u("/api/v1/users/ghost"),
                ("admin", "ghost")
            )
            .await,
            404
        );
        same_answer(
            &app,
            token,
            get.clone(),
            u("/api/v1/users/admin/tokens"),
            u("/api/v1/users/ghost/tokens"),
            ("admin", "ghost"),
        )
        .await;
        let active = Some(json!({"active": true}));
        same_answer(
            &app,
            token,
            patch.clone(),
            ("/api/v1/users/admin", active.clone()),
            ("/api/v1/users/ghost", active),
            ("admin", "ghost"),
        )
        .await;
        same_answer(
            &app,
            token,
            delete.clone(),
            u("/api/v1/users/admin"),
            u("/api/v1/users/ghost"),
            ("admin", "ghost"),
        )
        .await;
        app.call(get.clone(), "/api/v1/users/me", Some(token), None).await.expect(200);
        // a grant for someone, or somewhere, one may not see
        let grant = |user: &str, product: &str| Some(json!({"user": user, "product": product, "role": "viewer"}));
        same_answer(
            &app,
            token,
            post.clone(),
            ("/api/v1/grants", grant("admin", "P2")),
            ("/api/v1/grants", grant("ghost", "P2")),
            ("admin", "ghost"),
        )
        .await;
        same_answer(
            &app,
            token,
            post.clone(),
            ("/api/v1/grants", grant("admin", "P1")),
            ("/api/v1/grants", grant("ghost", "P1")),
            ("admin", "ghost"),
        )
        .await;
    }
    for token in [&other, &nobody] {
        // P1's catalog, by URL and by reference
        let u = |p: String| (p, None::<Value>);
        for (a, b, names) in [
            ("/api/v1/products/P1".to_owned(), "/api/v1/products/P9".to_owned(), ("P1", "P9")),
            ("/api/v1/models/CAFEBABE".to_owned(), "/api/v1/models/CAFEBABF".to_owned(), ("CAFEBABE", "CAFEBABF")),
            ("/api/v1/channels/BAADFOOD".to_owned(), "/api/v1/channels/BAADF00D".to_owned(), ("BAADFOOD", "BAADF00D")),
            (
                format!("/api/v1/firmware/{fw}"),
                format!("/api/v1/firmware/{ghost_fw}"),
                (fw.as_str(), ghost_fw.as_str()),
            ),
            (
                format!("/api/v1/devices/{dev}"),
                format!("/api/v1/devices/{ghost_dev}"),
                (dev.as_str(), ghost_dev.as_str()),
            ),
            (
                format!("/api/v1/devices/{dev}/sessions"),
                format!("/api/v1/devices/{ghost_dev}/sessions"),
                (dev.as_str(), ghost_dev.as_str()),
            ),
        ] {
            let (a, b) = (u(a), u(b));
            assert_eq!(same_answer(&app, token, get.clone(), (&a.0, None), (&b.0, None), names).await, 404, "{}", a.0);
            same_answer(&app, token, patch.clone(), (&a.0, Some(json!({}))), (&b.0, Some(json!({}))), names).await;
            same_answer(&app, token, delete.clone(), (&a.0, None), (&b.0, None), names).await;
        }
        for (path, field, known, unknown, rest) in [
            ("/api/v1/models", "product", "P1", "P9", json!({"tid": "x1", "name": "n"})),
            ("/api/v1/channels", "product", "P1", "P9", json!({"tid": "x1", "name": "n"})),
            ("/api/v1/devices", "model", "CAFEBABE", "CAFEBABF", json!({"device_id": "x1"})),
            ("/api/v1/firmware", "model", "CAFEBABE", "CAFEBABF", json!({"version": "9.9.9"})),
        ] {
            let body = |r: &str| {
                let mut b = rest.clone();
                b[field] = json!(r);
                Some(b)
            };
            let s =
                same_answer(&app, token, post.clone(), (path, body(known)), (path, body(unknown)), (known, unknown))
                    .await;
            assert_eq!(s, 422, "{path}");
            let filter = |r: &str| format!("{path}?{field}={r}");
            same_answer(&app, token, get.clone(), (&filter(known), None), (&filter(unknown), None), (known, unknown))
                .await;
        }
    }
    // what one may see but not change stays 403
    for (method, path) in [
        (patch.clone(), "/api/v1/products/P1"),
        (delete.clone(), "/api/v1/models/CAFEBABE"),
        (patch.clone(), "/api/v1/users/me"),
    ] {
        let r = app.call(method.clone(), path, Some(&viewer), Some(json!({}))).await;
        r.expect_error(403, "forbidden");
    }
}
