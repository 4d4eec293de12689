//! The REST API under `/api/v1`: one file per resource, one handler per action.

mod catalog;
mod devices;
mod firmware;
mod people;
mod sessions;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(catalog::configure)
        .configure(firmware::configure)
        .configure(devices::configure)
        .configure(people::configure)
        .configure(sessions::configure);
}
