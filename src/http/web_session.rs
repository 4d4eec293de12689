//! The web UI's authentication: the session cookie turned into a [`Signed`] browser by an
//! extractor (the API's `Authorization: Token` extractor is in `auth.rs`), the cookie's
//! flags, and the CSRF check.
//!
//! The cookie carries a random secret naming a row (`service::web_sessions`); it is
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it),
//! `Secure` when the public URL is https, and `Path=/` (the upload goes to the same origin).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};

use crate::error::Error;
use crate::service::Hub;
use crate::service::web_sessions::{self, Signed};

/// The session cookie.
pub const COOKIE: &str = "dh_session";
/// A request header the UI's own background refresh sends: it does not count as activity,
/// so a page left open still reaches the idle timeout.
pub const BACKGROUND_HEADER: &str = "x-devicehub-background";
/// The header carrying the CSRF token of requests a script makes (the image upload).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where signing in happens.
pub const SIGN_IN_PATH: &str = "/ui/sign-in";

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value with the UI's flags; `max_age`: `Some(0)` deletes it, `None` makes a
/// cookie that lasts as long as the browser (the server decides when the session is over).
pub fn set_cookie(hub: &Hub, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if hub.public_url.scheme() == "https" {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Not signed in (or no longer): pages and forms redirect to the sign-in page, which comes
/// back here afterwards; a script's request (the upload) gets a plain 401.
#[derive(Debug)]
pub struct SignInRequired {
    /// Where to come back to.
    next: Option<String>,
}

impl std::fmt::Display for SignInRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sign in first")
    }
}

impl ResponseError for SignInRequired {
    fn status_code(&self) -> StatusCode {
        match self.next {
            Some(_) => StatusCode::SEE_OTHER,
            None => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match &self.next {
            Some(next) => {
                let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("{SIGN_IN_PATH}?{query}")))
                    .insert_header(("x-devicehub-error", "unauthorized"))
                    .finish()
            }
            None => Error::Unauthorized("sign in to the web UI first".into()).error_response(),
        }
    }
}

/// Where a signed-out request should return to after signing in: the page itself for a
/// `GET`, the page the form was on otherwise (the form's own action is not a page).
fn return_to(req: &HttpRequest) -> Option<String> {
    let method = req.method();
    if method == actix_web::http::Method::GET {
        return Some(req.uri().path_and_query().map_or("/ui".into(), |pq| pq.as_str().to_owned()));
    }
    (method == actix_web::http::Method::POST).then(|| "/ui".to_owned())
}

/// A signed-in browser, from the session cookie.
pub struct SignedIn(pub Signed);

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<SignedIn, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let hub = req.app_data::<web::Data<Hub>>().cloned();
        let secret = cookie(req, COOKIE);
        let active = !req.headers().contains_key(BACKGROUND_HEADER);
        let next = return_to(req);
        Box::pin(async move {
            let hub = hub.ok_or_else(|| Error::internal("the hub is missing from the application data"))?;
            let Some(secret) = secret else {
                return Err(SignInRequired { next }.into());
            };
            match web_sessions::authenticate(&hub, secret, active).await {
                Ok(signed) => Ok(SignedIn(signed)),
                Err(Error::Unauthorized(_)) => Err(SignInRequired { next }.into()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// The refusal of a request whose CSRF token is missing or wrong.
pub fn csrf_refused() -> Error {
    Error::forbidden("the form is stale or came from elsewhere (its CSRF token is missing or wrong); reload the page")
}

/// Checks a CSRF token against the signed-in session's.
pub fn check_csrf(signed: &Signed, given: Option<&str>) -> Result<(), Error> {
    match given {
        Some(token) if web_sessions::csrf_matches(&signed.csrf, token) => Ok(()),
        _ => Err(csrf_refused()),
    }
}

/// The CSRF token in a script's request header.
pub fn csrf_header(req: &HttpRequest) -> Option<&str> {
    req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}
