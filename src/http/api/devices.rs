//! `/devices`: device twins.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::Hub;
use crate::service::devices::{self as svc, DeviceQuery, DeviceUpdate, NewDevice};
use crate::service::{Actor, ListParams};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub(super) fn routes() -> Vec<Route> {
    let r = |method, path, handler: Handler| Route::new("devices", "/devices", method, path, handler);
    vec![
        r(Method::GET, "", |r| r.to(list)),
        r(Method::POST, "", |r| r.to(create)),
        r(Method::GET, "/{id}", |r| r.to(get)),
        r(Method::PATCH, "/{id}", |r| r.to(update)),
        r(Method::PUT, "/{id}", |r| r.to(update)),
        r(Method::DELETE, "/{id}", |r| r.to(delete)),
        r(Method::GET, "/{id}/sessions", |r| r.to(history)),
        r(Method::POST, "/{id}/target-token", |r| r.to(rotate_target_token)),
        r(Method::POST, "/{id}/request-attributes", |r| r.to(request_attributes)),
    ]
}

/// List devices; filter by `product`, `model`, `channel`, `device_id`.
async fn list(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<DeviceQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list(&hub, &a, q.into_inner()).await?))
}

async fn create(hub: HubData, a: Actor, body: Json<NewDevice>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create(&hub, &a, body.into_inner()).await?))
}

async fn get(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get(&hub, &a, id.into_inner()).await?))
}

async fn update(hub: HubData, a: Actor, id: Id, body: Json<DeviceUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

/// A new hawkBit target token (shown in this answer only); the old one stops working.
async fn rotate_target_token(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::rotate_target_token(&hub, &a, id.into_inner()).await?))
}

/// Asks the device for its attributes (DDI `configData` link; DMF `REQUEST_ATTRIBUTES_UPDATE`).
async fn request_attributes(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::request_attributes(&hub, &a, id.into_inner()).await?))
}

/// The device's firmware-update sessions, expired ones included.
async fn history(hub: HubData, a: Actor, r: HttpRequest, id: Id, q: web::Query<ListParams>) -> Result<HttpResponse> {
    let listing = crate::service::session::request::device_history(&hub, &a, id.into_inner(), q.into_inner()).await?;
    Ok(pagination::respond(&hub, &r, listing))
}

async fn delete(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
