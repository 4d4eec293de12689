//! The OpenAPI document: it matches the checked-in snapshot (`docs/openapi.json`; run with
//! `UPDATE_SNAPSHOTS=1` to rewrite it after a deliberate change), every JSON route that is
//! mounted appears in it, and its Swagger UI is served from the binary.

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(the_document_matches_its_snapshot_and_covers_every_route, the_docs_ui_is_served_offline);

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

async fn the_document_matches_its_snapshot_and_covers_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // every mounted route that answers JSON (not the HTML of the UI and the index page)
    let mut missing = Vec::new();
    for route in devicehub::http::routes() {
        if route.family == "ui" || route.pattern == "/" {
            continue;
        }
        let path = devicehub::http::openapi::openapi_path(&route.pattern);
        let method = route.method.as_str().to_lowercase();
        if doc["paths"][&path][&method].is_null() {
            missing.push(format!("{} {}", route.method, route.pattern));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add them to http::openapi::OPERATIONS):\n{}",
        missing.join("\n")
    );
    assert_eq!(doc["paths"]["/{tenant}/controller/v1/{controller}"]["get"]["tags"][0], "DDI");
    assert!(doc["components"]["schemas"]["SessionView"]["properties"]["action"].is_object(), "{}", doc["components"]);

    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &served).unwrap();
        return;
    }
    let snapshot = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        snapshot == served,
        "the OpenAPI document changed; if that is meant, run `UPDATE_SNAPSHOTS=1 cargo test --test api openapi` and commit docs/openapi.json"
    );
}

async fn the_docs_ui_is_served_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(app.url("/api/v1/docs")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/api/v1/docs/index.html");
    let page = app.client.get(app.url("/api/v1/docs/index.html")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let init = app.client.get(app.url("/api/v1/docs/swagger-initializer.js")).send().await.unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/api/v1/openapi.json"));
    let bundle = app.client.get(app.url("/api/v1/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000, "the bundle is compiled in");
    assert_eq!(app.client.get(app.url("/api/v1/docs/nothing.js")).send().await.unwrap().status(), 404);
}
