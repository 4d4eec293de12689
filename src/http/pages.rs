//! HTML pages rendered from `templates/` (compiled into the binary by askama).

use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;

use crate::service::Hub;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
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
