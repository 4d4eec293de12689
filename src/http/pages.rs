//! HTML pages rendered from `templates/` (compiled into the binary by askama).

use actix_web::http::Method;
use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;

use super::routes::Route;
use crate::service::Hub;

pub fn routes() -> Vec<Route> {
    vec![Route::new("public", "", Method::GET, "/", |r| r.to(index))]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    super::routes::mount(cfg, "", &routes());
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
struct Index {
    version: &'static str,
    backend: &'static str,
    base: String,
}

async fn index(hub: web::Data<Hub>) -> Index {
    Index { version: env!("CARGO_PKG_VERSION"), backend: hub.db.backend().name(), base: hub.link("") }
}
