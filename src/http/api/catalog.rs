//! `/products`, `/models`, `/channels`, `/delivery-methods`, `/delivery-procedures`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::db::{channel::Channel, model::Model};
use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::service::catalog::{
    self as svc, HandleUpdate, NewHandle, NewProcedure, NewScoped, ProcedureQuery, ProcedureUpdate, ProductScoped,
    ProductUpdate, ScopedQuery,
};
use crate::service::{Actor, ListParams};
use crate::state::AppState;

type State = web::Data<AppState>;
type Id = web::Path<String>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/products").service(web::resource("").get(list_products).post(create_product)).service(
        web::resource("/{id}").get(get_product).patch(update_product).put(update_product).delete(delete_product),
    ))
    .service(scoped::<Model>("/models"))
    .service(scoped::<Channel>("/channels"))
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
async fn list_products(s: State, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_products(&s, &a, q.into_inner()).await?))
}

/// Create a product (global admins).
async fn create_product(s: State, a: Actor, body: Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_product(&s, &a, body.into_inner()).await?))
}

async fn get_product(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_product(&s, &a, id.into_inner()).await?))
}

async fn update_product(s: State, a: Actor, id: Id, body: Json<ProductUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_product(&s, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_product(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_product(&s, &a, id.into_inner()).await?;
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
    s: State,
    a: Actor,
    r: HttpRequest,
    q: web::Query<ScopedQuery>,
) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_scoped::<T>(&s, &a, q.into_inner()).await?))
}

async fn create_scoped<T: ProductScoped>(s: State, a: Actor, body: Json<NewScoped>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_scoped::<T>(&s, &a, body.into_inner()).await?))
}

async fn get_scoped<T: ProductScoped>(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_scoped::<T>(&s, &a, id.into_inner()).await?))
}

async fn update_scoped<T: ProductScoped>(s: State, a: Actor, id: Id, body: Json<HandleUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_scoped::<T>(&s, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_scoped<T: ProductScoped>(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_scoped::<T>(&s, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// delivery methods

async fn list_methods(s: State, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_methods(&s, &a, q.into_inner()).await?))
}

async fn create_method(s: State, a: Actor, body: Json<NewHandle>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_method(&s, &a, body.into_inner()).await?))
}

async fn get_method(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_method(&s, &a, id.into_inner()).await?))
}

async fn update_method(s: State, a: Actor, id: Id, body: Json<HandleUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_method(&s, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_method(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_method(&s, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// delivery procedures

async fn list_procedures(s: State, a: Actor, r: HttpRequest, q: web::Query<ProcedureQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_procedures(&s, &a, q.into_inner()).await?))
}

async fn create_procedure(s: State, a: Actor, body: Json<NewProcedure>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_procedure(&s, &a, body.into_inner()).await?))
}

async fn get_procedure(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_procedure(&s, &a, id.into_inner()).await?))
}

async fn update_procedure(s: State, a: Actor, id: Id, body: Json<ProcedureUpdate>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::update_procedure(&s, &a, id.into_inner(), body.into_inner()).await?))
}

async fn delete_procedure(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_procedure(&s, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
