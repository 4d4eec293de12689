//! `/products`, `/models`, `/channels`, `/delivery-methods`, `/delivery-procedures`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::Hub;
use crate::service::catalog::{
    self as svc, HandleUpdate, NewHandle, NewProcedure, NewScoped, ProcedureQuery, ProcedureUpdate, ProductScoped,
    ProductUpdate, ScopedQuery,
};
use crate::service::{Actor, ListParams};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub(super) fn routes() -> Vec<Route> {
    let products = |method, path, handler: Handler| Route::new("products", "/products", method, path, handler);
    let methods =
        |method, path, handler: Handler| Route::new("delivery-methods", "/delivery-methods", method, path, handler);
    let procedures = |method, path, handler: Handler| {
        Route::new("delivery-procedures", "/delivery-procedures", method, path, handler)
    };
    let mut all = vec![
        products(Method::GET, "", |r| r.to(list_products)),
        products(Method::POST, "", |r| r.to(create_product)),
        products(Method::GET, "/{id}", |r| r.to(get_product)),
        products(Method::PATCH, "/{id}", |r| r.to(update_product)),
        products(Method::PUT, "/{id}", |r| r.to(update_product)),
        products(Method::DELETE, "/{id}", |r| r.to(delete_product)),
    ];
    all.extend(scoped::<svc::Models>("models", "/models"));
    all.extend(scoped::<svc::Channels>("channels", "/channels"));
    all.extend([
        methods(Method::GET, "", |r| r.to(list_methods)),
        methods(Method::POST, "", |r| r.to(create_method)),
        methods(Method::GET, "/{id}", |r| r.to(get_method)),
        methods(Method::PATCH, "/{id}", |r| r.to(update_method)),
        methods(Method::PUT, "/{id}", |r| r.to(update_method)),
        methods(Method::DELETE, "/{id}", |r| r.to(delete_method)),
        procedures(Method::GET, "", |r| r.to(list_procedures)),
        procedures(Method::POST, "", |r| r.to(create_procedure)),
        procedures(Method::GET, "/{id}", |r| r.to(get_procedure)),
        procedures(Method::PATCH, "/{id}", |r| r.to(update_procedure)),
        procedures(Method::PUT, "/{id}", |r| r.to(update_procedure)),
        procedures(Method::DELETE, "/{id}", |r| r.to(delete_procedure)),
    ]);
    all
}

// products

/// List the products the caller may read.
async fn list_products(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_products(&hub, &a, q.into_inner()).await?))
}

/// Create a product (global admins).
async fn create_product(hub: HubData, a: Actor, body: Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_product(&hub, &a, body.into_inner()).await?))
}

async fn get_product(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_product(&hub, &a, id.into_inner()).await?))
}

async fn update_product(hub: HubData, a: Actor, id: Id, body: Json<ProductUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_product(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_product(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_product(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// models and channels share their handlers

fn scoped<T: ProductScoped>(family: &'static str, scope: &'static str) -> Vec<Route> {
    let r = |method, path, handler: Handler| Route::new(family, scope, method, path, handler);
    vec![
        r(Method::GET, "", |r| r.to(list_scoped::<T>)),
        r(Method::POST, "", |r| r.to(create_scoped::<T>)),
        r(Method::GET, "/{id}", |r| r.to(get_scoped::<T>)),
        r(Method::PATCH, "/{id}", |r| r.to(update_scoped::<T>)),
        r(Method::PUT, "/{id}", |r| r.to(update_scoped::<T>)),
        r(Method::DELETE, "/{id}", |r| r.to(delete_scoped::<T>)),
    ]
}

async fn list_scoped<T: ProductScoped>(
    hub: HubData,
    a: Actor,
    r: HttpRequest,
    q: web::Query<ScopedQuery>,
) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_scoped::<T>(&hub, &a, q.into_inner()).await?))
}

async fn create_scoped<T: ProductScoped>(hub: HubData, a: Actor, body: Json<NewScoped>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_scoped::<T>(&hub, &a, body.into_inner()).await?))
}

async fn get_scoped<T: ProductScoped>(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_scoped::<T>(&hub, &a, id.into_inner()).await?))
}

async fn update_scoped<T: ProductScoped>(
    hub: HubData,
    a: Actor,
    id: Id,
    body: Json<HandleUpdate>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_scoped::<T>(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_scoped<T: ProductScoped>(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_scoped::<T>(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// delivery methods

async fn list_methods(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_methods(&hub, &a, q.into_inner()).await?))
}

async fn create_method(hub: HubData, a: Actor, body: Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_method(&hub, &a, body.into_inner()).await?))
}

async fn get_method(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_method(&hub, &a, id.into_inner()).await?))
}

async fn update_method(hub: HubData, a: Actor, id: Id, body: Json<HandleUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_method(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_method(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_method(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// delivery procedures

async fn list_procedures(
    hub: HubData,
    a: Actor,
    r: HttpRequest,
    q: web::Query<ProcedureQuery>,
) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_procedures(&hub, &a, q.into_inner()).await?))
}

async fn create_procedure(hub: HubData, a: Actor, body: Json<NewProcedure>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_procedure(&hub, &a, body.into_inner()).await?))
}

async fn get_procedure(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_procedure(&hub, &a, id.into_inner()).await?))
}

async fn update_procedure(hub: HubData, a: Actor, id: Id, body: Json<ProcedureUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_procedure(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_procedure(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_procedure(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
