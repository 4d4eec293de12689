//! Device twins through the admin API.

use serde_json::json;

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(devices_crud_and_validation);

async fn devices_crud_and_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = app.seed_catalog().await;
    let dev = app
        .post(
            "/api/v1/devices",
            json!({"device_id": "my-device-id", "model": "CAFEBABE", "channel": "BAADFOOD",
                   "attributes": {"hw": "rev2"}, "installed_version": "v0.1"}),
        )
        .await
        .expect(201);
    assert_eq!(dev.body["product"], cat.product);
    assert_eq!(dev.body["model"], cat.model);
    assert_eq!(dev.body["channel"], cat.channel);
    assert_eq!(dev.body["installed_version"], "0.1.0");
    assert_eq!(dev.body["attributes"], json!({"hw": "rev2"}));
    let id = dev.id();

    // the same device id in the same product is a conflict; another product may reuse it
    app.post("/api/v1/devices", json!({"device_id": "my-device-id", "product": "P1"}))
        .await
        .expect_error(409, "already_exists");
    app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201);
    app.post("/api/v1/devices", json!({"device_id": "my-device-id", "product": "P2"})).await.expect(201);

    for (body, status) in [
        (json!({"device_id": "has space", "product": "P1"}), 400),
        (json!({"device_id": "x"}), 400),
        (json!({"device_id": "x", "product": "P1", "attributes": {"n": 1}}), 400),
        (json!({"device_id": "x", "product": "P1", "channel": "NOPE"}), 422),
        (json!({"device_id": "x", "product": "P2", "model": "CAFEBABE"}), 422),
        (json!({"device_id": "x", "product": "P1", "installed_version": "latest"}), 400),
    ] {
        let r = app.post("/api/v1/devices", body.clone()).await;
        assert_eq!(r.status, status, "{body} → {}", r.body);
    }

    let updated =
        app.patch(&format!("/api/v1/devices/{id}"), json!({"channel": null, "name": "bench unit"})).await.expect(200);
    assert!(updated.body["channel"].is_null());
    assert_eq!(updated.body["name"], "bench unit");
    assert_eq!(updated.body["model"], cat.model, "absent fields stay");
    app.patch(&format!("/api/v1/devices/{id}"), json!({"attributes": {"a": "b"}})).await.expect(200);
    assert_eq!(app.get(&format!("/api/v1/devices/{id}")).await.body["attributes"], json!({"a": "b"}));

    let list = app.get("/api/v1/devices?product=P1").await.expect(200);
    assert_eq!(list.body["count"], 1);
    assert_eq!(app.get("/api/v1/devices?device_id=my-device-id").await.body["count"], 2);
    app.delete(&format!("/api/v1/devices/{id}")).await.expect(204);
    app.get(&format!("/api/v1/devices/{id}")).await.expect_error(404, "not_found");
}
