//! `/products`, `/models`, `/channels`, `/delivery-methods`, `/delivery-procedures`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::pagination;
use crate::service::Hub;
use crate::service::catalog::{
    self as svc, HandleUpdate, NewHandle, NewProcedure, NewScoped, ProcedureQuery, ProcedureUpdate, ProductScoped,
    ProductUpdate, ScopedQuery,
};
use crate::service::{Actor, ListParams};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/products").service(web::resource("").get(list_products).post(create_product)).service(
        web::resource("/{id}").get(get_product).patch(update_product).put(update_product).delete(delete_product),
    ))
    .service(scoped::<svc::Models>("/models"))
    .service(scoped::<svc::Channels>("/channels"))
    .service(
        web::scope("/delivery-methods").service(web::resource("").get(list_methods).post(create_method)).service(
            web::resource("/{id}").get(get_method).patch(update_method).put(update_method).delete(delete_method),
        ),
    )
    .service(
        web::scope("/delivery-procedures")
            .service(web::resource("").get(list_procedures).post(create_procedure))
            .service(
                web::resource("/{id}")
                    .get(get_procedure)
                    .patch(update_procedure)
                    .put(update_procedure)
                    .delete(delete_procedure),
            ),
    );
}

// products

/// List the products the caller may read.
async fn list_products(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_products(&hub, &a, q.into_inner()).await?))
}

/// Create a product (global admins).
async fn create_product(hub: HubData, a: Actor, body: web::Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_product(&hub, &a, body.into_inner()).await?))
}

async fn get_product(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_product(&hub, &a, id.into_inner()).await?))
}

async fn update_product(hub: HubData, a: Actor, id: Id, body: web::Json<ProductUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_product(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_product(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_product(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// models and channels share their handlers

fn scoped<T: ProductScoped>(path: &'static str) -> actix_web::Scope {
    web::scope(path).service(web::resource("").get(list_scoped::<T>).post(create_scoped::<T>)).service(
        web::resource("/{id}")
            .get(get_scoped::<T>)
            .patch(update_scoped::<T>)
            .put(update_scoped::<T>)
            .delete(delete_scoped::<T>),
    )
}

async fn list_scoped<T: ProductScoped>(
    hub: HubData,
    a: Actor,
    r: HttpRequest,
    q: web::Query<ScopedQuery>,
) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_scoped::<T>(&hub, &a, q.into_inner()).await?))
}

async fn create_scoped<T: ProductScoped>(hub: HubData, a: Actor, body: web::Json<NewScoped>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_scoped::<T>(&hub, &a, body.into_inner()).await?))
}

async fn get_scoped<T: ProductScoped>(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_scoped::<T>(&hub, &a, id.into_inner()).await?))
}

async fn update_scoped<T: ProductScoped>(
    hub: HubData,
    a: Actor,
    id: Id,
    body: web::Json<HandleUpdate>,
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

async fn create_method(hub: HubData, a: Actor, body: web::Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_method(&hub, &a, body.into_inner()).await?))
}

async fn get_method(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_method(&hub, &a, id.into_inner()).await?))
}

async fn update_method(hub: HubData, a: Actor, id: Id, body: web::Json<HandleUpdate>) -> Result<HttpResponse> {
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

async fn create_procedure(hub: HubData, a: Actor, body: web::Json<NewProcedure>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_procedure(&hub, &a, body.into_inner()).await?))
}

async fn get_procedure(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_procedure(&hub, &a, id.into_inner()).await?))
}

async fn update_procedure(hub: HubData, a: Actor, id: Id, body: web::Json<ProcedureUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_procedure(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_procedure(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_procedure(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
