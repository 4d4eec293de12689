//! `/users`, `/users/{id}/tokens`, `/grants`. `{id}` of a user is its id, its username,
//! or `me`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::input::Json;
use crate::http::pagination;
use crate::http::routes::{Handler, Route};
use crate::service::Hub;
use crate::service::people::{self as svc, GrantQuery, NewGrant, NewPassword, NewToken, NewUser, UserUpdate};
use crate::service::{Actor, ListParams};

type HubData = web::Data<Hub>;
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
        users(Method::POST, "/{id}/password", |r| r.to(set_password)),
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

async fn list_users(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_users(&hub, &a, q.into_inner()).await?))
}

async fn create_user(hub: HubData, a: Actor, body: Json<NewUser>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_user(&hub, &a, body.into_inner()).await?))
}

async fn get_user(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::get_user(&hub, &a, id).await?))
}

async fn update_user(hub: HubData, a: Actor, id: Id, body: Json<UserUpdate>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::update_user(&hub, &a, id, body.into_inner()).await?))
}

async fn delete_user(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    svc::delete_user(&hub, &a, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Set a password for the web UI: one's own (with `current_password` once one is set), or
/// anyone's as a global admin. The user's web UI sessions end.
async fn set_password(hub: HubData, a: Actor, id: Id, body: Json<NewPassword>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    svc::set_password(&hub, &a, id, body.into_inner(), None).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_tokens(
    hub: HubData,
    a: Actor,
    r: HttpRequest,
    id: Id,
    q: web::Query<ListParams>,
) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(pagination::respond(&hub, &r, svc::list_tokens(&hub, &a, id, q.into_inner()).await?))
}

/// Create a token; the answer is the only time its secret is shown.
async fn create_token(hub: HubData, a: Actor, id: Id, body: Json<NewToken>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Created().json(svc::create_token(&hub, &a, id, body.into_inner()).await?))
}

async fn get_token(hub: HubData, a: Actor, path: web::Path<(String, String)>) -> Result<HttpResponse> {
    let (user, token) = path.into_inner();
    Ok(HttpResponse::Ok().json(svc::get_token(&hub, &a, user_ref(&a, user), token).await?))
}

/// Revoke a token: it stops working at once.
async fn revoke_token(hub: HubData, a: Actor, path: web::Path<(String, String)>) -> Result<HttpResponse> {
    let (user, token) = path.into_inner();
    svc::revoke_token(&hub, &a, user_ref(&a, user), token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_grants(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<GrantQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_grants(&hub, &a, q.into_inner()).await?))
}

async fn create_grant(hub: HubData, a: Actor, body: Json<NewGrant>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_grant(&hub, &a, body.into_inner()).await?))
}

async fn get_grant(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_grant(&hub, &a, id.into_inner()).await?))
}

async fn delete_grant(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_grant(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
