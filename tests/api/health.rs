//! Health, readiness and the index page.

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(health_and_readiness);

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.call(reqwest::Method::GET, "/healthz", None, None).await.expect(200).body["status"], "ok");
    let ready = app.call(reqwest::Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["object_store"], "ok");
    assert_eq!(ready.body["integrity"]["quarantined"], 0);
    let index = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("devicehub"));
}
