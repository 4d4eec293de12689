//! `Authorization: Token <token>` (Django REST framework's scheme, as in seed 003; `Bearer`
//! is accepted too) turned into a [`service::Actor`] by an extractor.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::error::Error;
use crate::service::Hub;
use crate::service::auth::Credentials;
use crate::service::{Actor, auth};

/// The token in an `Authorization` header with the given schemes, if any.
pub fn bearer<'a>(req: &'a HttpRequest, schemes: &[&str]) -> Option<&'a str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)).then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The presented token, unchecked (the service checks it in its own database work).
impl FromRequest for Credentials {
    type Error = Error;
    type Future = std::future::Ready<Result<Credentials, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            bearer(req, &["Token", "Bearer"])
                .map(|t| Credentials(t.to_owned()))
                .ok_or_else(|| Error::Unauthorized("send an API token: 'Authorization: Token <token>'".into())),
        )
    }
}

impl FromRequest for Actor {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Actor, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let hub = req.app_data::<web::Data<Hub>>().cloned();
        let token = bearer(req, &["Token", "Bearer"]).map(str::to_owned);
        Box::pin(async move {
            let hub = hub.ok_or_else(|| Error::internal("the hub is missing from the application data"))?;
            let token =
                token.ok_or_else(|| Error::Unauthorized("send an API token: 'Authorization: Token <token>'".into()))?;
            auth::authenticate(&hub, &token).await
        })
    }
}
