//! `/healthz`: the process answers. `/readyz`: the database and the object store answer.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::routes::Route;
use crate::service::Hub;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new("public", "", Method::GET, "/healthz", |r| r.to(healthz)),
        Route::new("public", "", Method::GET, "/readyz", |r| r.to(readyz)),
    ]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    super::routes::mount(cfg, &routes());
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(hub: web::Data<Hub>) -> HttpResponse {
    let (db, store) = futures_util::join!(hub.db.ping(), hub.storage.ping());
    let describe = |r: &crate::error::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let body = json!({
        "status": if db.is_ok() && store.is_ok() { "ready" } else { "unavailable" },
        "database": describe(&db),
        "object_store": describe(&store),
    });
    if db.is_ok() && store.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(%body, "not ready");
        HttpResponse::ServiceUnavailable().json(body)
    }
}
