//! `GET /metrics`: Prometheus' scrape (`service::metrics`). Open unless `metrics_token` is
//! set; then only `Authorization: Bearer <token>` (Prometheus' `authorization` setting) reads it.

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::routes::Route;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::auth::hash_token;

pub fn routes() -> Vec<Route> {
    vec![Route::new("metrics", "", Method::GET, "/metrics", |r| r.to(metrics))]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    super::routes::mount(cfg, "", &routes());
}

async fn metrics(hub: web::Data<Hub>, req: HttpRequest) -> Result<HttpResponse> {
    if let Some(expected) = &hub.settings.metrics_token {
        // compared as digests, so the time taken says nothing about the token
        let given = super::auth::bearer(&req, &["Bearer"]).map(hash_token);
        if given.as_deref() != Some(hash_token(expected.expose()).as_str()) {
            return Err(Error::Unauthorized("/metrics needs 'Authorization: Bearer <metrics_token>'".into()));
        }
    }
    let text = crate::service::metrics::render(&hub).await?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)).body(text))
}
