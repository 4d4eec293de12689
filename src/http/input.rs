//! What the REST API refuses before a handler sees it: a NUL character anywhere in the path,
//! the query or the JSON body is `400 invalid`. PostgreSQL cannot store NUL in text (it
//! answered 500) while SQLite stored it; one rule here keeps both backends alike. Other
//! control characters are the domain validators' business (`domain::ids`): names, handles, ids
//! and usernames refuse them, free text such as messages may keep a newline.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

fn nul_in_uri() -> Error {
    Error::invalid("the path or query contains a NUL character (%00), which no name or id may hold")
}

fn nul_in_body() -> Error {
    Error::invalid("the body contains a NUL character (\\u0000), which no field may hold")
}

/// Whether a (still percent-encoded) path or query names a NUL character. A raw NUL cannot
/// reach here: the HTTP parser refuses it in the request line.
pub fn uri_has_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// Whether any string (or key) in a JSON value holds a NUL character.
pub fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Middleware for the API scope: a NUL in the path or query is refused before routing.
pub fn refuse_nul_in_uri<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let refused = uri_has_nul(req.uri().path()) || req.uri().query().is_some_and(uri_has_nul);
    let response = (!refused).then(|| srv.call(req));
    async move {
        match response {
            Some(response) => response.await,
            None => Err(nul_in_uri().into()),
        }
    }
}

/// A JSON body, as `web::Json` reads it (content type, size limit and errors from
/// [`super::errors::json_config`]), refused with `400 invalid` if any string in it holds a NUL.
/// Every REST API handler that takes a JSON body takes it through this.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            if json_has_nul(&value) {
                return Err(nul_in_body().into());
            }
            serde_json::from_value(value)
                .map(Json)
                .map_err(|e| Error::bad_request("invalid_body", e.to_string()).into())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_anywhere_in_json() {
        assert!(!json_has_nul(&json!({"a": ["b", 1, null, {"c": "d\n"}]})));
        assert!(json_has_nul(&json!({"a": ["b", {"c": "d\u{0}"}]})));
        assert!(json_has_nul(&json!({"a\u{0}": 1})));
        assert!(json_has_nul(&json!("\u{0}")));
    }

    #[test]
    fn nul_in_uris() {
        assert!(uri_has_nul("/api/v1/users/a%00b"));
        assert!(uri_has_nul("device_id=%00"));
        assert!(!uri_has_nul("/api/v1/users/a%20b"));
        assert!(!uri_has_nul("offset=100"));
    }
}
