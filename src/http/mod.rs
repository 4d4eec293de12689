//! The HTTP doors: the admin/device REST API under `/api/v1`, health checks and the index
//! page. Handlers are thin: parse, call `service::*`, render.

pub mod api;
pub mod auth;
pub mod download;
pub mod errors;
pub mod health;
pub mod pages;
pub mod pagination;
pub mod range;

use actix_web::middleware::{ErrorHandlers, NormalizePath, TrailingSlash};
use actix_web::{http::StatusCode, web};

use crate::state::AppState;

/// Largest JSON body the API reads (image uploads are raw bodies and not limited by this).
pub const JSON_LIMIT: usize = 1024 * 1024;

/// Mounts everything on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .app_data(errors::json_config())
        .app_data(errors::query_config())
        .app_data(errors::path_config())
        .configure(health::configure)
        .configure(pages::configure)
        .service(
            web::scope("/api/v1")
                .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, errors::method_not_allowed))
                .configure(api::configure)
                .default_service(web::to(errors::not_found)),
        )
        .default_service(web::to(errors::not_found));
}

/// Paths work with or without a trailing slash (seed 003 uses both).
pub fn normalize_path() -> NormalizePath {
    NormalizePath::new(TrailingSlash::Trim)
}
