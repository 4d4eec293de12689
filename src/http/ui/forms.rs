//! Posted forms: the signed-in browser, the fields, and the CSRF check, in one extractor, so
//! no form handler can forget the check. A field holding a NUL character is refused like in
//! the API (`400 invalid`).

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::http::web_session::{SignedIn, check_csrf};
use crate::service::web_sessions::Signed;

/// The name of the hidden field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// A form's fields, in order (a multiple select sends one pair per choice).
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, Error> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        if pairs.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(Error::invalid("the form holds a NUL character, which no field may hold"));
        }
        Ok(Form(pairs))
    }

    /// A field's first value, `""` when absent (what a template shows).
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// A field's value, trimmed; `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A field's value as given (`""` when absent).
    pub fn text(&self, name: &str) -> String {
        self.get(name).trim().to_owned()
    }

    /// Every non-blank value of a field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_owned()).collect()
    }

    /// Whether a field was sent at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A yes/no field (`true`/`on`/`yes`/`1` or `false`/`off`/`no`/`0`), `None` when absent.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.opt(name).as_deref() {
            None => Ok(None),
            Some("true" | "on" | "yes" | "1") => Ok(Some(true)),
            Some("false" | "off" | "no" | "0") => Ok(Some(false)),
            Some(other) => Err(Error::invalid(format!("{name}: {other:?} is neither yes nor no"))),
        }
    }

    /// Whether a choice of a multiple field was made (for re-showing a form).
    pub fn chose(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }
}

/// `key=value` lines (device attributes, an assignment's attribute filter) as a JSON object.
pub fn key_values(field: &str, text: &str) -> Result<Map<String, Value>, Error> {
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("{field}: {line:?} is not key=value (one per line)")))?;
        map.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
    }
    Ok(map)
}

/// A posted form of a signed-in browser whose CSRF token matched.
pub struct Posted {
    pub signed: Signed,
    pub form: Form,
}

impl Posted {
    /// The browser, for rendering a page after the change.
    pub fn me(&self) -> SignedIn {
        SignedIn(self.signed.clone())
    }
}

impl FromRequest for Posted {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Posted, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed = SignedIn::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let SignedIn(signed) = signed.await?;
            let body = body.await.map_err(|e| super::UiError::from(Error::invalid(format!("the form: {e}"))))?;
            let form = Form::parse(&body).map_err(super::UiError::from)?;
            check_csrf(&signed, form.opt(CSRF_FIELD).as_deref())
                .map_err(|error| super::UiError { signed: Some(Box::new(signed.clone())), error })?;
            Ok(Posted { signed, form })
        })
    }
}
