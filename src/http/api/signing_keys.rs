//! `/signing-keys` (admins create or import keys; anyone with a grant lists them) and
//! `/public-keys` (the public halves, for devices and build systems, without a token). No
//! route ever answers a secret key.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::routes::{Handler, Route};
use crate::service::Actor;
use crate::service::Hub;
use crate::service::signing_keys::{self as svc, NewSigningKey};

type HubData = web::Data<Hub>;

pub(super) fn routes() -> Vec<Route> {
    let keys = |method, path, handler: Handler| Route::new("signing-keys", "/signing-keys", method, path, handler);
    let public = |method, path, handler: Handler| Route::new("public-keys", "/public-keys", method, path, handler);
    vec![
        keys(Method::GET, "", |r| r.to(list)),
        keys(Method::POST, "", |r| r.to(create)),
        public(Method::GET, "", |r| r.to(public_keys)),
        public(Method::GET, "/{id}", |r| r.to(public_key)),
    ]
}

async fn list(hub: HubData, a: Actor) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::list(&hub, &a).await?))
}

/// Create (`{"name"}`) or import (`{"name", "secret_key", "password"?}`) a key.
async fn create(hub: HubData, a: Actor, body: Json<NewSigningKey>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create(&hub, &a, body.into_inner()).await?))
}

async fn public_keys(hub: HubData) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::public_keys(&hub).await?))
}

/// The minisign `.pub` file of one key (by id, name or minisign key id).
async fn public_key(hub: HubData, id: web::Path<String>) -> Result<HttpResponse> {
    let text = svc::public_key(&hub, id.into_inner()).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text))
}
