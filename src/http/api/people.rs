//! `/users`, `/users/{id}/tokens`, `/grants`. `{id}` of a user is its id, its username,
//! or `me`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::people::{self as svc, GrantQuery, NewGrant, NewToken, NewUser, UserUpdate};
use crate::service::{Actor, ListParams};
use crate::state::AppState;

type State = web::Data<AppState>;
type Id = web::Path<String>;

pub(super) fn routes() -> Vec<Route> {
    let users = |method, path, handler: Handler| Route::new("users", "/users", method, path, handler);
    let tokens = |method, path, handler: Handler| Route::new("tokens", "/users", method, path, handler);
    let grants = |method, path, handler: Handler| Route::new("grants", "/grants", method, path, handler);
    vec![
        users(Method::GET, "", |r| r.to(list_users)),
        users(Method::POST, "", |r| r.to(create_user)),
        users(Method::GET, "/{id}", |r| r.to(get_user)),
        users(Method::PATCH, "/{id}", |r| r.to(update_user)),
        users(Method::PUT, "/{id}", |r| r.to(update_user)),
        users(Method::DELETE, "/{id}", |r| r.to(delete_user)),
        tokens(Method::GET, "/{id}/tokens", |r| r.to(list_tokens)),
        tokens(Method::POST, "/{id}/tokens", |r| r.to(create_token)),
        tokens(Method::GET, "/{id}/tokens/{token}", |r| r.to(get_token)),
        tokens(Method::DELETE, "/{id}/tokens/{token}", |r| r.to(revoke_token)),
        grants(Method::GET, "", |r| r.to(list_grants)),
        grants(Method::POST, "", |r| r.to(create_grant)),
        grants(Method::GET, "/{id}", |r| r.to(get_grant)),
        grants(Method::DELETE, "/{id}", |r| r.to(delete_grant)),
    ]
}

/// `me` names the caller.
fn user_ref(actor: &Actor, raw: String) -> String {
    if raw == "me" { actor.user_id.clone() } else { raw }
}

async fn list_users(s: State, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_users(&s, &a, q.into_inner()).await?))
}

async fn create_user(s: State, a: Actor, body: Json<NewUser>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_user(&s, &a, body.into_inner()).await?))
}

async fn get_user(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::get_user(&s, &a, id).await?))
}

async fn update_user(s: State, a: Actor, id: Id, body: Json<UserUpdate>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::update_user(&s, &a, id, body.into_inner()).await?))
}

async fn delete_user(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    svc::delete_user(&s, &a, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_tokens(s: State, a: Actor, r: HttpRequest, id: Id, q: web::Query<ListParams>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(pagination::respond(&s, &r, svc::list_tokens(&s, &a, id, q.into_inner()).await?))
}

/// Create a token; the answer is the only time its secret is shown.
async fn create_token(s: State, a: Actor, id: Id, body: Json<NewToken>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Created().json(svc::create_token(&s, &a, id, body.into_inner()).await?))
}

async fn get_token(s: State, a: Actor, path: web::Path<(String, String)>) -> Result<HttpResponse> {
    let (user, token) = path.into_inner();
    Ok(HttpResponse::Ok().json(svc::get_token(&s, &a, user_ref(&a, user), token).await?))
}

/// Revoke a token: it stops working at once.
async fn revoke_token(s: State, a: Actor, path: web::Path<(String, String)>) -> Result<HttpResponse> {
    let (user, token) = path.into_inner();
    svc::revoke_token(&s, &a, user_ref(&a, user), token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_grants(s: State, a: Actor, r: HttpRequest, q: web::Query<GrantQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&s, &r, svc::list_grants(&s, &a, q.into_inner()).await?))
}

async fn create_grant(s: State, a: Actor, body: Json<NewGrant>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_grant(&s, &a, body.into_inner()).await?))
}

async fn get_grant(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_grant(&s, &a, id.into_inner()).await?))
}

async fn delete_grant(s: State, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_grant(&s, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
