//! Users, tokens and grants.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(users_crud_and_validation, tokens_are_shown_once_and_revocable, grants_and_the_last_admin);

async fn users_crud_and_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.get("/api/v1/users/me").await.expect(200);
    assert_eq!(me.body["username"], "admin");

    let u = app.post("/api/v1/users", json!({"username": "my-machine-user"})).await.expect(201);
    assert_eq!(u.body["active"], true);
    app.post("/api/v1/users", json!({"username": "my-machine-user"})).await.expect_error(409, "already_exists");
    app.post("/api/v1/users", json!({"username": "no spaces"})).await.expect_error(400, "invalid");
    app.get("/api/v1/users/my-machine-user").await.expect(200);
    assert_eq!(app.get("/api/v1/users").await.expect(200).body["count"], 2);

    let renamed = app.patch(&format!("/api/v1/users/{}", u.id()), json!({"username": "bootloader"})).await.expect(200);
    assert_eq!(renamed.body["username"], "bootloader");
    app.patch("/api/v1/users/bootloader", json!({"username": "admin"})).await.expect_error(409, "already_exists");
    app.delete("/api/v1/users/me").await.expect_error(409, "cannot_delete_self");
    app.delete("/api/v1/users/bootloader").await.expect(204);
    app.get("/api/v1/users/bootloader").await.expect_error(404, "not_found");
}

async fn tokens_are_shown_once_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post("/api/v1/users", json!({"username": "ci"})).await.expect(201);
    app.post("/api/v1/grants", json!({"user": "ci", "role": "viewer"})).await.expect(201);
    let created = app.post("/api/v1/users/ci/tokens", json!({"name": "pipeline"})).await.expect(201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("dh_") && secret.len() >= 40);
    assert_eq!(created.body["hint"], &secret[..7]);
    let token_id = created.id();

    // usable, and never shown again
    app.call(Method::GET, "/api/v1/products", Some(&secret), None).await.expect(200);
    let listed = app.get("/api/v1/users/ci/tokens").await.expect(200);
    assert_eq!(listed.body["count"], 1);
    assert!(listed.body["results"][0].get("token").is_none());
    assert!(listed.body["results"][0]["last_used_at"].is_string());
    assert!(app.get(&format!("/api/v1/users/ci/tokens/{token_id}")).await.expect(200).body.get("token").is_none());

    // a user manages their own tokens
    let own = app
        .call(Method::POST, "/api/v1/users/me/tokens", Some(&secret), Some(json!({"name": "second"})))
        .await
        .expect(201);
    let second = own.body["token"].as_str().unwrap().to_owned();
    // but not someone else's: other users are not even visible to them (issue 9, defect 13)
    app.call(Method::GET, "/api/v1/users/admin/tokens", Some(&secret), None).await.expect_error(404, "not_found");

    // revoked → 401 at once, the other token still works
    app.delete(&format!("/api/v1/users/ci/tokens/{token_id}")).await.expect(204);
    app.call(Method::GET, "/api/v1/products", Some(&secret), None).await.expect_error(401, "unauthorized");
    app.call(Method::GET, "/api/v1/products", Some(&second), None).await.expect(200);
    assert_eq!(app.get(&format!("/api/v1/users/ci/tokens/{token_id}")).await.body["revoked"], true);

    // expiry in the past is refused; a deactivated user's tokens stop working
    app.post("/api/v1/users/ci/tokens", json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect_error(400, "invalid");
    app.post("/api/v1/users/ci/tokens", json!({"name": "x", "expires_at": "tomorrow"}))
        .await
        .expect_error(400, "invalid");
    app.patch("/api/v1/users/ci", json!({"active": false})).await.expect(200);
    app.call(Method::GET, "/api/v1/products", Some(&second), None).await.expect_error(401, "unauthorized");
    app.get(&format!("/api/v1/users/ci/tokens/{}", uuid::Uuid::new_v4())).await.expect_error(404, "not_found");
}

async fn grants_and_the_last_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post("/api/v1/products", json!({"tid": "P1", "name": "one"})).await.expect(201);
    app.post("/api/v1/users", json!({"username": "alice"})).await.expect(201);
    let g =
        app.post("/api/v1/grants", json!({"user": "alice", "product": "P1", "role": "maintainer"})).await.expect(201);
    assert_eq!(g.body["role"], "maintainer");
    app.post("/api/v1/grants", json!({"user": "alice", "product": "P1", "role": "maintainer"}))
        .await
        .expect_error(409, "already_exists");
    app.post("/api/v1/grants", json!({"user": "alice", "role": "root"})).await.expect_error(400, "invalid");
    app.post("/api/v1/grants", json!({"user": "nobody", "role": "viewer"}))
        .await
        .expect_error(422, "unknown_reference");
    app.post("/api/v1/grants", json!({"user": "alice", "product": "NOPE", "role": "viewer"}))
        .await
        .expect_error(422, "unknown_reference");
    assert_eq!(app.get("/api/v1/grants?user=alice").await.expect(200).body["count"], 1);
    assert_eq!(app.get("/api/v1/grants?product=P1").await.expect(200).body["count"], 1);

    // the only global admin grant cannot go, nor can its holder be deactivated
    let admin_grant = app.get("/api/v1/grants?user=admin").await.body["results"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/grants/{admin_grant}")).await.expect_error(409, "last_admin");
    app.patch("/api/v1/users/admin", json!({"active": false})).await.expect_error(409, "last_admin");
    // with a second admin it can
    app.post("/api/v1/grants", json!({"user": "alice", "role": "admin"})).await.expect(201);
    app.delete(&format!("/api/v1/grants/{admin_grant}")).await.expect(204);
    // admin now has no rights left
    app.call(Method::GET, "/api/v1/users", Some(ADMIN_TOKEN), None).await.expect_error(403, "forbidden");

    // a grant is visible only to who may manage it
    app.delete(&format!("/api/v1/grants/{}", g.id())).await.expect_error(404, "not_found");
}
