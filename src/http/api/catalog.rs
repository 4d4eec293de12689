//! `/products`, `/models`, `/channels`, `/delivery-methods`, `/delivery-procedures`. Reading,
//! changing and deleting one object is the same for every family (`service::catalog`'s
//! generic `get`, `update`, `delete`); lists and creations are each family's own.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::Hub;
use crate::service::catalog::{
    self as svc, CatalogObject, DeliveryMethod, DeliveryProcedure, NewHandle, NewProcedure, NewScoped, ProcedureQuery,
    Product, ProductScoped, ScopedQuery,
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
    let mut all =
        vec![products(Method::GET, "", |r| r.to(list_products)), products(Method::POST, "", |r| r.to(create_product))];
    all.extend(one_object::<Product>(products));
    all.extend(scoped::<svc::Models>("models", "/models"));
    all.extend(scoped::<svc::Channels>("channels", "/channels"));
    all.extend([methods(Method::GET, "", |r| r.to(list_methods)), methods(Method::POST, "", |r| r.to(create_method))]);
    all.extend(one_object::<DeliveryMethod>(methods));
    all.extend([
        procedures(Method::GET, "", |r| r.to(list_procedures)),
        procedures(Method::POST, "", |r| r.to(create_procedure)),
    ]);
    all.extend(one_object::<DeliveryProcedure>(procedures));
    all
}

/// `GET`, `PATCH`/`PUT` and `DELETE` of `/{id}`, for any family.
fn one_object<T>(route: impl Fn(Method, &'static str, Handler) -> Route) -> Vec<Route>
where
    T: CatalogObject,
    T::Update: DeserializeOwned,
{
    vec![
        route(Method::GET, "/{id}", |r| r.to(get::<T>)),
        route(Method::PATCH, "/{id}", |r| r.to(update::<T>)),
        route(Method::PUT, "/{id}", |r| r.to(update::<T>)),
        route(Method::DELETE, "/{id}", |r| r.to(delete::<T>)),
    ]
}

async fn get<T: CatalogObject>(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get::<T>(&hub, &a, id.into_inner()).await?))
}

/// Change the given fields.
async fn update<T>(hub: HubData, a: Actor, id: Id, body: Json<T::Update>) -> Result<HttpResponse>
where
    T: CatalogObject,
    T::Update: DeserializeOwned,
{
    Ok(HttpResponse::Ok().json(svc::update::<T>(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

/// `204`, or `409 in_use` while other objects depend on it.
async fn delete<T: CatalogObject>(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete::<T>(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
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

// models and channels share their handlers

fn scoped<T: ProductScoped>(family: &'static str, scope: &'static str) -> Vec<Route> {
    let r = move |method, path, handler: Handler| Route::new(family, scope, method, path, handler);
    let mut all =
        vec![r(Method::GET, "", |r| r.to(list_scoped::<T>)), r(Method::POST, "", |r| r.to(create_scoped::<T>))];
    all.extend(one_object::<T>(r));
    all
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

// delivery methods and procedures

async fn list_methods(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_methods(&hub, &a, q.into_inner()).await?))
}

async fn create_method(hub: HubData, a: Actor, body: Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_method(&hub, &a, body.into_inner()).await?))
}

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
