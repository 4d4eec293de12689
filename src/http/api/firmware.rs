//! `/firmware`: versions, channels, the image upload and the release.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::Actor;
use crate::service::Hub;
use crate::service::assignments::AssignRequest;
use crate::service::firmware::{self as svc, FirmwareQuery, FirmwareUpdate, NewFirmware, UploadOptions};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub(super) fn routes() -> Vec<Route> {
    let r = |method, path, handler: Handler| Route::new("firmware", "/firmware", method, path, handler);
    vec![
        r(Method::GET, "", |r| r.to(list)),
        r(Method::POST, "", |r| r.to(create)),
        r(Method::GET, "/{id}", |r| r.to(get)),
        r(Method::PATCH, "/{id}", |r| r.to(update)),
        r(Method::PUT, "/{id}", |r| r.to(update)),
        r(Method::DELETE, "/{id}", |r| r.to(delete)),
        r(Method::PUT, "/{id}/image", |r| r.to(upload_image)),
        r(Method::GET, "/{id}/image", |r| r.to(download_image)),
        r(Method::HEAD, "/{id}/image", |r| r.to(download_image)),
        r(Method::POST, "/{id}/release", |r| r.to(release)),
        r(Method::POST, "/{id}/assign", |r| r.to(assign)),
    ]
}

/// List firmware; filter by `model`, `channel`, `state`, `version`.
async fn list(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<FirmwareQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list(&hub, &a, q.into_inner()).await?))
}

/// Create a draft firmware for a model.
async fn create(hub: HubData, a: Actor, body: Json<NewFirmware>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create(&hub, &a, body.into_inner()).await?))
}

async fn get(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get(&hub, &a, id.into_inner()).await?))
}

async fn update(hub: HubData, a: Actor, id: Id, body: Json<FirmwareUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Upload the image as the raw request body (`?sha256=` to have it verified,
/// `?filename=` for the name devices see). Streamed; never held in memory whole.
async fn upload_image(
    hub: HubData,
    a: Actor,
    id: Id,
    req: HttpRequest,
    q: web::Query<UploadOptions>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let length =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    Ok(HttpResponse::Ok().json(svc::upload_image(&hub, &a, id.into_inner(), q.into_inner(), length, body).await?))
}

/// The stored image, whole or one byte range.
async fn download_image(hub: HubData, a: Actor, id: Id, req: HttpRequest) -> Result<HttpResponse> {
    let blob = svc::image(&hub, &a, id.into_inner()).await?;
    Ok(crate::http::download::respond(&req, &hub.storage, &blob, "admin").await?.0)
}

/// Push a released firmware to devices (by id/identity, channel or attributes): one
/// session each, started at once; hawkBit devices see it as an action.
async fn assign(hub: HubData, a: Actor, id: Id, body: Json<AssignRequest>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created()
        .json(crate::service::assignments::assign(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

/// draft → released. Idempotent.
async fn release(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::release(&hub, &a, id.into_inner()).await?))
}
