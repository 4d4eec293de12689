//! `/users`, `/users/{id}/tokens`, `/grants`. `{id}` of a user is its id, its username,
//! or `me`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::Result;
use crate::http::pagination;
use crate::service::Hub;
use crate::service::people::{self as svc, GrantQuery, NewGrant, NewToken, NewUser, UserUpdate};
use crate::service::{Actor, ListParams};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/users")
            .service(web::resource("").get(list_users).post(create_user))
            .service(web::resource("/{id}").get(get_user).patch(update_user).put(update_user).delete(delete_user))
            .service(web::resource("/{id}/tokens").get(list_tokens).post(create_token))
            .service(web::resource("/{id}/tokens/{token}").get(get_token).delete(revoke_token)),
    )
    .service(
        web::scope("/grants")
            .service(web::resource("").get(list_grants).post(create_grant))
            .service(web::resource("/{id}").get(get_grant).delete(delete_grant)),
    );
}

/// `me` names the caller.
fn user_ref(actor: &Actor, raw: String) -> String {
    if raw == "me" { actor.user_id.clone() } else { raw }
}

async fn list_users(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<ListParams>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list_users(&hub, &a, q.into_inner()).await?))
}

async fn create_user(hub: HubData, a: Actor, body: web::Json<NewUser>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_user(&hub, &a, body.into_inner()).await?))
}

async fn get_user(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::get_user(&hub, &a, id).await?))
}

async fn update_user(hub: HubData, a: Actor, id: Id, body: web::Json<UserUpdate>) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    Ok(HttpResponse::Ok().json(svc::update_user(&hub, &a, id, body.into_inner()).await?))
}

async fn delete_user(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    let id = user_ref(&a, id.into_inner());
    svc::delete_user(&hub, &a, id).await?;
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
async fn create_token(hub: HubData, a: Actor, id: Id, body: web::Json<NewToken>) -> Result<HttpResponse> {
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

async fn create_grant(hub: HubData, a: Actor, body: web::Json<NewGrant>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::create_grant(&hub, &a, body.into_inner()).await?))
}

async fn get_grant(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get_grant(&hub, &a, id.into_inner()).await?))
}

async fn delete_grant(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    svc::delete_grant(&hub, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
