//! `/healthz`: the process answers. `/readyz`: the database and the object store answer.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::service::Hub;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
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
