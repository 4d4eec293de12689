//! Renders [`crate::error::Error`] as JSON, and turns actix's own extractor failures
//! (bad JSON, wrong content type, bad query) into the same shape.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::Error;

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if let Error::Internal(e) = self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Error::RangeNotSatisfiable { size } | Error::MultipleRanges { size } => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            Error::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Token"));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(super::JSON_LIMIT).error_handler(|err, _req| {
        let e = match &err {
            JsonPayloadError::ContentType => {
                Error::UnsupportedMediaType("the body must be JSON (Content-Type: application/json)".into())
            }
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                Error::PayloadTooLarge(format!("the JSON body is larger than {limit} bytes"))
            }
            JsonPayloadError::Deserialize(de) if de.is_data() => Error::bad_request("invalid_body", de.to_string()),
            other => Error::bad_request("invalid_json", format!("the body is not valid JSON: {other}")),
        };
        e.into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        Error::bad_request("invalid_query", format!("bad query parameters: {err}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err: PathError, _req| Error::NotFound(format!("no such path: {err}")).into())
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    Error::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// actix answers 405 with an empty body; give it the JSON shape.
pub fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let (req, _) = res.into_parts();
    let response =
        Error::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path())).error_response();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}
