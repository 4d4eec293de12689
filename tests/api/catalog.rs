//! Products, models, channels, delivery methods and procedures: CRUD and validation.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(
    products_crud_and_validation,
    models_and_channels_crud_and_validation,
    delivery_methods_and_procedures,
    lists_paginate_and_filter,
    bad_bodies_get_json_errors,
    product_handles_that_clash_in_case_are_renamed_by_the_migration,
    offsets_are_bounded_on_every_list,
);

async fn products_crud_and_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.post("/api/v1/products/", json!({"tid": "P1", "name": "Product one"})).await.expect(201);
    let id = created.id();
    assert_eq!(created.body["tid"], "P1");
    assert!(created.body["created_at"].as_str().unwrap().ends_with("+00:00"));

    // by id and by handle, with and without trailing slash
    assert_eq!(app.get(&format!("/api/v1/products/{id}/")).await.expect(200).body["name"], "Product one");
    assert_eq!(app.get("/api/v1/products/P1").await.expect(200).id(), id);

    // validation: bad handle, handle that looks like a UUID, empty name, missing field, unknown field
    app.post("/api/v1/products", json!({"tid": "has space", "name": "x"})).await.expect_error(400, "invalid");
    app.post("/api/v1/products", json!({"tid": uuid::Uuid::new_v4().to_string(), "name": "x"}))
        .await
        .expect_error(400, "invalid");
    app.post("/api/v1/products", json!({"tid": "P2", "name": "  "})).await.expect_error(400, "invalid");
    app.post("/api/v1/products", json!({"tid": "P2"})).await.expect_error(400, "invalid_body");
    app.post("/api/v1/products", json!({"tid": "P2", "name": "x", "colour": "red"}))
        .await
        .expect_error(400, "invalid_body");
    // duplicate handle
    app.post("/api/v1/products", json!({"tid": "P1", "name": "again"})).await.expect_error(409, "already_exists");

    // update, then the old handle is gone and the new one works
    let updated = app.patch("/api/v1/products/P1", json!({"tid": "P1b", "name": "Renamed"})).await.expect(200);
    assert_eq!(updated.body["name"], "Renamed");
    app.get("/api/v1/products/P1").await.expect_error(404, "not_found");
    app.get("/api/v1/products/P1b").await.expect(200);
    app.post("/api/v1/products", json!({"tid": "P3", "name": "three"})).await.expect(201);
    app.patch("/api/v1/products/P3", json!({"tid": "P1b"})).await.expect_error(409, "already_exists");

    // a product with a model cannot be deleted; without, it can
    app.post("/api/v1/models", json!({"tid": "M1", "name": "m", "product": "P1b"})).await.expect(201);
    app.delete("/api/v1/products/P1b").await.expect_error(409, "in_use");
    app.delete("/api/v1/models/M1").await.expect(204);
    app.delete("/api/v1/products/P1b").await.expect(204);
    app.get(&format!("/api/v1/products/{id}")).await.expect_error(404, "not_found");
    app.delete(&format!("/api/v1/products/{id}")).await.expect_error(404, "not_found");
}

async fn models_and_channels_crud_and_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post("/api/v1/products", json!({"tid": "P1", "name": "one"})).await.expect(201);
    let p2 = app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201).id();
    for kind in ["models", "channels"] {
        let path = format!("/api/v1/{kind}");
        let made = app.post(&path, json!({"tid": format!("{kind}-a"), "name": "A", "product": "P1"})).await.expect(201);
        let id = made.id();
        // the product may be named by id too
        app.post(&path, json!({"tid": format!("{kind}-b"), "name": "B", "product": p2})).await.expect(201);
        // unknown product → 422, duplicate handle → 409, bad handle → 400
        app.post(&path, json!({"tid": format!("{kind}-c"), "name": "C", "product": "NOPE"}))
            .await
            .expect_error(422, "unknown_reference");
        app.post(&path, json!({"tid": format!("{kind}-a"), "name": "A", "product": "P1"}))
            .await
            .expect_error(409, "already_exists");
        app.post(&path, json!({"tid": "a/b", "name": "A", "product": "P1"})).await.expect_error(400, "invalid");

        let got = app.get(&format!("{path}/{kind}-a")).await.expect(200);
        assert_eq!(got.id(), id);
        assert_eq!(got.body["product"], app.get("/api/v1/products/P1").await.body["id"]);
        let updated = app.patch(&format!("{path}/{id}"), json!({"name": "A2"})).await.expect(200);
        assert_eq!(updated.body["name"], "A2");
        assert_eq!(updated.body["tid"], format!("{kind}-a"));
        app.patch(&format!("{path}/{id}"), json!({"product": "P2"})).await.expect_error(400, "invalid_body");
        app.get(&format!("{path}/unknown")).await.expect_error(404, "not_found");
        app.delete(&format!("{path}/{id}")).await.expect(204);
        app.get(&format!("{path}/{id}")).await.expect_error(404, "not_found");
    }
}

async fn delivery_methods_and_procedures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let method =
        app.post("/api/v1/delivery-methods", json!({"tid": "DEADBEEF", "name": "HTTP"})).await.expect(201).id();
    app.post("/api/v1/delivery-methods", json!({"tid": "DEADBEEF", "name": "again"}))
        .await
        .expect_error(409, "already_exists");

    let proc = app
        .post(
            "/api/v1/delivery-procedures",
            json!({
                "tid": "dp-handle", "name": "gzip and manifest", "delivery_method": "DEADBEEF",
                "steps": [{"type": "gzip", "level": 9}, {"type": "manifest"}],
                "confirm": true, "timeouts": {"ready": 60, "created": 3600}
            }),
        )
        .await
        .expect(201);
    assert_eq!(proc.body["delivery_method"], method);
    assert_eq!(proc.body["steps"], json!([{"type": "gzip", "level": 9}, {"type": "manifest"}]));
    assert_eq!(proc.body["timeouts"], json!({"ready": 60, "created": 3600}));
    assert_eq!(proc.body["effective_timeouts"]["ready"], 60);
    assert_eq!(proc.body["effective_timeouts"]["up_to_date"], 900, "unset states use the server default");

    // defaults: no steps (the image as-is), no confirm step
    let plain = app
        .post("/api/v1/delivery-procedures", json!({"tid": "plain", "name": "plain", "delivery_method": method}))
        .await
        .expect(201);
    assert_eq!(plain.body["steps"], json!([]));
    assert_eq!(plain.body["confirm"], false);

    for (body, code) in [
        (json!({"tid": "x", "name": "x", "delivery_method": "DEADBEEF", "steps": [{"type": "teleport"}]}), 422),
        (json!({"tid": "x", "name": "x", "delivery_method": "DEADBEEF", "steps": {"type": "image"}}), 422),
        (json!({"tid": "x", "name": "x", "delivery_method": "DEADBEEF", "timeouts": {"ready": 0}}), 400),
        (json!({"tid": "x", "name": "x", "delivery_method": "DEADBEEF", "timeouts": {"someday": 5}}), 400),
        (json!({"tid": "x", "name": "x", "delivery_method": "NOPE"}), 422),
    ] {
        let r = app.post("/api/v1/delivery-procedures", body.clone()).await;
        assert_eq!(r.status, code, "{body} → {}", r.body);
    }

    let updated = app
        .patch("/api/v1/delivery-procedures/dp-handle", json!({"confirm": false, "steps": [{"type": "image"}]}))
        .await
        .expect(200);
    assert_eq!(updated.body["confirm"], false);
    assert_eq!(updated.body["timeouts"], json!({"ready": 60, "created": 3600}), "untouched fields stay");
    app.patch("/api/v1/delivery-procedures/dp-handle", json!({"timeouts": {"ready": -1}})).await.expect(400);

    // a method with procedures cannot go
    app.delete("/api/v1/delivery-methods/DEADBEEF").await.expect_error(409, "in_use");
    app.delete("/api/v1/delivery-procedures/dp-handle").await.expect(204);
    app.delete("/api/v1/delivery-procedures/plain").await.expect(204);
    app.delete("/api/v1/delivery-methods/DEADBEEF").await.expect(204);
    let list = app.get("/api/v1/delivery-methods").await.expect(200);
    assert_eq!(list.body["count"], 0);
}

async fn lists_paginate_and_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..5 {
        app.post("/api/v1/products", json!({"tid": format!("P{i}"), "name": format!("product {i}")})).await.expect(201);
    }
    app.post("/api/v1/models", json!({"tid": "M-A", "name": "a", "product": "P0"})).await.expect(201);
    app.post("/api/v1/models", json!({"tid": "M-B", "name": "b", "product": "P1"})).await.expect(201);

    let page = app.get("/api/v1/products?limit=2&offset=2").await.expect(200);
    assert_eq!(page.body["count"], 5);
    let names: Vec<_> = page.body["results"].as_array().unwrap().iter().map(|p| p["tid"].clone()).collect();
    assert_eq!(names, vec![json!("P2"), json!("P3")]);
    let next = page.body["next"].as_str().unwrap();
    assert!(next.starts_with(&app.base) && next.contains("offset=4"), "{next}");
    assert!(page.body["previous"].as_str().unwrap().contains("offset=0"));
    let last = app.client.get(next).header("Authorization", format!("Token {ADMIN_TOKEN}")).send().await.unwrap();
    let last: serde_json::Value = last.json().await.unwrap();
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert!(last["next"].is_null());

    let models = app.get("/api/v1/models?product=P1").await.expect(200);
    assert_eq!(models.body["count"], 1);
    assert_eq!(models.body["results"][0]["tid"], "M-B");
    app.get("/api/v1/models?product=NOPE").await.expect_error(422, "unknown_reference");

    app.get("/api/v1/products?limit=0").await.expect_error(400, "invalid_query");
    app.get("/api/v1/products?limit=abc").await.expect_error(400, "invalid_query");
    app.get("/api/v1/products?offset=-1").await.expect_error(400, "invalid_query");
}

async fn bad_bodies_get_json_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.url("/api/v1/products");
    let auth = format!("Token {ADMIN_TOKEN}");

    let r = app
        .client
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body("{\"tid\": ")
        .send()
        .await
        .unwrap();
    crate::helpers::Resp::from(r).await.expect_error(400, "invalid_json");

    let r = app
        .client
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    crate::helpers::Resp::from(r).await.expect_error(415, "unsupported_media_type");

    let big = format!("{{\"tid\": \"P\", \"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = app
        .client
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    crate::helpers::Resp::from(r).await.expect_error(413, "payload_too_large");

    app.call(Method::DELETE, "/api/v1/products", Some(ADMIN_TOKEN), None).await.expect_error(405, "method_not_allowed");
    app.get("/api/v1/no-such-thing").await.expect_error(404, "not_found");
    // nothing was created by any of the above
    assert_eq!(app.get("/api/v1/products").await.body["count"], 0);
}

/// Runs SQL on the test's database directly (what the API would refuse).
fn raw_sql(app: &TestApp, sql: &str) -> diesel::QueryResult<()> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    match app.env.backend {
        Backend::Sqlite => {
            let path = app.env.database_url.trim_start_matches("sqlite://");
            diesel::SqliteConnection::establish(path).unwrap().batch_execute(sql)
        }
        Backend::Postgres => diesel::PgConnection::establish(&app.env.database_url).unwrap().batch_execute(sql),
    }
}

/// Issue 9, defect 3: the migration that makes product handles unique ignoring case keeps
/// the oldest of a clashing set and renames the others; afterwards the index refuses clashes.
async fn product_handles_that_clash_in_case_are_renamed_by_the_migration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = app.post("/api/v1/products", json!({"tid": "Fleet", "name": "old"})).await.expect(201).id();
    let up = include_str!("../../migrations/2026-11-25-000004_product_handles_ignore_case/up.sql");
    // as before the migration: two handles that differ only in case
    raw_sql(&app, "DROP INDEX products_tid_lower").unwrap();
    raw_sql(
        &app,
        "INSERT INTO products (id, tid, name, created_at, updated_at) \
         VALUES ('0badc0de-0000-4000-8000-000000000000', 'FLEET', 'new', '2099-01-01 00:00:00', '2099-01-01 00:00:00')",
    )
    .unwrap();
    raw_sql(&app, up).unwrap();
    assert_eq!(app.get("/api/v1/products/Fleet").await.expect(200).id(), old);
    let renamed = app.get("/api/v1/products/0badc0de-0000-4000-8000-000000000000").await.expect(200);
    assert_eq!(renamed.body["tid"], "FLEET-0badc0de");
    let clash = "INSERT INTO products (id, tid, name, created_at, updated_at) \
                 VALUES ('x', 'fleet', 'x', '2099-01-01 00:00:00', '2099-01-01 00:00:00')";
    assert!(raw_sql(&app, clash).is_err(), "the index refuses handles that differ only in case");
}

/// Issue 9, defect 11: `?offset=` near `i64::MAX` gave a `next` link with a negative offset.
/// Offsets are bounded (at most 10^9) and a larger one is `400 invalid_query`.
async fn offsets_are_bounded_on_every_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let dev = app.post("/api/v1/devices", json!({"device_id": "d1", "model": "CAFEBABE"})).await.expect(201).id();
    let lists = [
        "/api/v1/products".to_owned(),
        "/api/v1/models".to_owned(),
        "/api/v1/channels".to_owned(),
        "/api/v1/delivery-methods".to_owned(),
        "/api/v1/delivery-procedures".to_owned(),
        "/api/v1/firmware".to_owned(),
        "/api/v1/devices".to_owned(),
        format!("/api/v1/devices/{dev}/sessions"),
        "/api/v1/users".to_owned(),
        "/api/v1/users/me/tokens".to_owned(),
        "/api/v1/grants".to_owned(),
        "/api/v1/firmware-update".to_owned(),
    ];
    for list in &lists {
        for bad in ["offset=9223372036854775807", "offset=1000000001", "limit=1000&offset=9223372036854775000"] {
            app.get(&format!("{list}?{bad}")).await.expect_error(400, "invalid_query");
        }
        let last = app.get(&format!("{list}?limit=1000&offset=1000000000")).await.expect(200);
        assert_eq!(last.body["next"], serde_json::Value::Null, "{list}");
        let previous = last.body["previous"].as_str().unwrap_or_default();
        assert!(previous.ends_with("limit=1000&offset=999999000"), "{list}: {previous}");
        let first = app.get(&format!("{list}?limit=1")).await.expect(200);
        for link in [&first.body["next"], &first.body["previous"]] {
            assert!(!link.as_str().unwrap_or_default().contains("offset=-"), "{list}: {link}");
        }
    }
}
