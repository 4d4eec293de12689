//! `/firmware-update`: the Leitwert Device Hub session API (seed 003), the signed
//! download, and the admin views of sessions and device histories.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::error::Result;
use crate::http::input::Json;
use crate::http::routes::{Handler, Route};
use crate::http::{auth, download, pagination};
use crate::service::Actor;
use crate::service::Hub;
use crate::service::auth::Credentials;
use crate::service::session::request::{self as svc, ConfirmRequest, DownloadAuth, SessionQuery, UpdateRequest};

type HubData = web::Data<Hub>;
type Id = web::Path<String>;

pub(super) fn routes() -> Vec<Route> {
    let r = |method, path, handler: Handler| Route::new("sessions", "/firmware-update", method, path, handler);
    // downloads first: a device's ranges are matched against the fewest patterns
    vec![
        r(Method::GET, "/{id}/download", |r| r.to(download_deliverable)),
        r(Method::HEAD, "/{id}/download", |r| r.to(download_deliverable)),
        r(Method::GET, "", |r| r.to(list)),
        r(Method::POST, "/request", |r| r.to(request)),
        r(Method::GET, "/{id}", |r| r.to(get)),
        r(Method::POST, "/{id}/start", |r| r.to(start)),
        r(Method::POST, "/{id}/confirm", |r| r.to(confirm)),
        r(Method::GET, "/{id}/events", |r| r.to(events)),
        r(Method::POST, "/{id}/cancel", |r| r.to(cancel)),
    ]
}

/// Ask for a firmware update: answers a session in `ready` (an update is available) or
/// `up_to_date`.
async fn request(hub: HubData, a: Actor, body: Json<UpdateRequest>) -> Result<HttpResponse> {
    Ok(HttpResponse::Created().json(svc::request(&hub, &a, body.into_inner()).await?))
}

/// The session's current state (timers applied), with the payload once it exists.
async fn get(hub: HubData, c: Credentials, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get(&hub, &c, id.into_inner()).await?))
}

/// `ready → queued`: start the delivery pipeline. Repeating it is harmless.
async fn start(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::start(&hub, &a, id.into_inner()).await?))
}

/// `created → success | fail`.
async fn confirm(hub: HubData, a: Actor, id: Id, body: Json<ConfirmRequest>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::confirm(&hub, &a, id.into_inner(), body.into_inner()).await?))
}

/// List sessions (readers of a product); filter by `state`, `device`, `model`, `expired`.
async fn list(hub: HubData, a: Actor, r: HttpRequest, q: web::Query<SessionQuery>) -> Result<HttpResponse> {
    Ok(pagination::respond(&hub, &r, svc::list(&hub, &a, q.into_inner()).await?))
}

/// Withdraw a session (an assigned one the device works on gets a cancel request it confirms).
async fn cancel(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(crate::service::assignments::cancel(&hub, &a, id.into_inner()).await?))
}

/// What happened to a session, newest first.
async fn events(hub: HubData, a: Actor, id: Id) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::events(&hub, &a, id.into_inner()).await?))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// The deliverable, whole or one byte range. Authorised by the signed link in the payload,
/// or by `Authorization: Token` of someone who may see the session.
async fn download_deliverable(
    hub: HubData,
    req: HttpRequest,
    id: Id,
    q: web::Query<LinkQuery>,
) -> Result<HttpResponse> {
    let auth = match auth::bearer(&req, &["Token", "Bearer"]) {
        Some(token) => DownloadAuth::Token(Credentials(token.to_owned())),
        None => match q.into_inner().token {
            Some(link) => DownloadAuth::Link(link),
            None => {
                return Err(crate::error::Error::Unauthorized(
                    "use the download_link from the session payload, or send 'Authorization: Token <token>'".into(),
                ));
            }
        },
    };
    let (blob, session) = svc::deliverable(&hub, auth, id.into_inner()).await?;
    let (response, served) = download::respond(&req, &hub.storage, &blob, "rest").await?;
    if let Some(served) = served {
        // the path only: the query holds the signed link
        crate::service::ddi::note_download(&hub, session, req.path().to_owned(), served).await?;
    }
    Ok(response)
}
