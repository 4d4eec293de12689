//! `/healthz`: the process answers. `/readyz`: the database and the object store answer
//! and take writes (`service::readiness`).

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
    super::routes::mount(cfg, "", &routes());
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(hub: web::Data<Hub>) -> HttpResponse {
    let readiness = crate::service::readiness::check(&hub).await;
    if readiness.is_ready() {
        HttpResponse::Ok().json(readiness)
    } else {
        tracing::warn!(?readiness, "not ready");
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}
