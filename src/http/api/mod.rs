//! The REST API under `/api/v1`: one file per resource, one handler per action.

mod catalog;
mod devices;
mod firmware;
mod people;
mod sessions;
mod signing_keys;

use actix_web::web;

use super::routes::{self, Route};

/// The API's routes, relative to `/api/v1`.
pub fn routes() -> Vec<Route> {
    // Devices' hot path first; each family sits under its own static prefix, so a request
    // is matched only against the few patterns of its family (actix matches `{id}` routes
    // with a regex each).
    let mut all = sessions::routes();
    all.extend(firmware::routes());
    all.extend(devices::routes());
    all.extend(catalog::routes());
    all.extend(people::routes());
    all.extend(signing_keys::routes());
    all.extend(super::openapi::routes());
    all
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::mount(cfg, super::API_PREFIX, &routes());
}
