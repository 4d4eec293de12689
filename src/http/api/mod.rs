//! The REST API under `/api/v1`: one file per resource, one handler per action.

mod catalog;
mod devices;
mod firmware;
mod people;
mod sessions;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Devices' hot path first; each family sits under its own static prefix, so a request
    // is matched only against the few patterns of its family (actix matches `{id}` routes
    // with a regex each).
    cfg.configure(sessions::configure)
        .configure(firmware::configure)
        .configure(devices::configure)
        .configure(catalog::configure)
        .configure(people::configure);
}
