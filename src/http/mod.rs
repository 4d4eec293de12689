//! The HTTP doors: the admin/device REST API under `/api/v1`, health checks and the index
//! page. Handlers are thin: parse, call `service::*`, render.

pub mod api;
pub mod auth;
pub mod ddi;
pub mod download;
pub mod errors;
pub mod health;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod pagination;
pub mod range;
pub mod routes;
pub mod ui;
pub mod web_session;

use std::future::Future;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::ErrorHandlers;
use actix_web::{http::StatusCode, web};

use tracing::Instrument;

use crate::service::Hub;
use crate::telemetry::request_id;

/// Largest JSON body the API reads (image uploads are raw bodies and not limited by this).
pub const JSON_LIMIT: usize = 1024 * 1024;

/// Where the REST API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Every route the server answers, as clients see it (method, path pattern, family): the
/// same tables [`configure`] mounts.
pub fn routes() -> Vec<routes::RouteInfo> {
    let public = health::routes().into_iter().chain(metrics::routes()).chain(pages::routes()).map(|r| r.info(""));
    let api = api::routes().into_iter().map(|r| r.info(API_PREFIX));
    let ddi = ddi::routes().into_iter().map(|r| r.info(""));
    let ui = ui::routes().into_iter().map(|r| r.info(ui::UI_PREFIX));
    public.chain(api).chain(ui).chain(ddi).collect()
}

/// Mounts everything on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, hub: Hub) {
    cfg.app_data(web::Data::new(hub))
        .app_data(errors::json_config())
        .app_data(errors::query_config())
        .app_data(errors::path_config())
        .configure(health::configure)
        .configure(metrics::configure)
        .configure(pages::configure)
        .configure(ui::configure)
        .service(
            web::scope(API_PREFIX)
                .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, errors::method_not_allowed))
                .wrap_fn(input::refuse_nul_in_uri)
                .configure(api::configure)
                .default_service(web::to(errors::not_found)),
        )
        .configure(ddi::configure)
        .default_service(web::to(errors::not_found));
}

/// A method as a label without allocating (anything unusual is `other`).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Paths work with or without a trailing slash (seed 003 uses both): `/a/b/` is served as
/// `/a/b`. (actix's `NormalizePath` does this with a regex on every request, which showed
/// up at ~7 % of the CPU of a status poll.)
pub fn trim_trailing_slash(req: &mut ServiceRequest) {
    let path = req.path();
    if path.len() <= 1 || !path.ends_with('/') {
        return;
    }
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let rebuilt = match req.query_string() {
        "" => trimmed.to_owned(),
        q => format!("{trimmed}?{q}"),
    };
    let mut parts = req.head().uri.clone().into_parts();
    if let Ok(pq) = rebuilt.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
}

/// The outermost middleware: trims the trailing slash, gives the request its id (the
/// client's `X-Request-Id` when short and printable, else a new UUID v7; returned in the same
/// header), runs it in a `request{id=…}` span so every log line of it carries the id, and
/// logs each request at DEBUG (and server errors at ERROR) with its status and duration.
/// Cheaper than tracing-actix-web, whose per-request span looks the route pattern up again
/// with a regex per route.
pub fn edge<S, B>(
    mut req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    trim_trailing_slash(&mut req);
    let started = Instant::now();
    let id = request_id::accept_or_make(req.headers().get(request_id::HEADER).map(|v| v.as_bytes()));
    let span = tracing::info_span!("request", id = %id);
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let line = debug.then(|| format!("{} {}", req.method(), req.path()));
    let response = span.in_scope(|| srv.call(req));
    let header = HeaderValue::from_str(&id).ok();
    let handled = async move {
        let mut response = response.await;
        if let Ok(r) = &mut response {
            let status = r.status().as_u16();
            let elapsed = started.elapsed();
            let micros = elapsed.as_micros();
            let route = r.request().app_data::<routes::MatchedRoute>().map_or("unmatched", |m| m.0);
            let method = method_label(r.request().method());
            let labels = crate::metrics::RouteLabels { method, route };
            crate::metrics::get().http_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
            if status >= 500 {
                tracing::error!(status, micros, request = %format!("{} {}", r.request().method(), r.request().path()), "request failed");
            } else if let Some(line) = line {
                tracing::debug!(status, micros, request = %line, "request");
            }
            if let Some(value) = header {
                r.headers_mut().insert(HeaderName::from_static(request_id::HEADER), value);
            }
        }
        response
    };
    request_id::scope(id, handled.instrument(span))
}
