//! Serves an object from the store to a device: whole, or one byte range, streamed.
//! Every download in every door (firmware-update sessions, the admin image download,
//! hawkBit artifacts) goes through [`respond`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::range::{self, Plan, RangeError};
use crate::error::{Error, Result};
use crate::storage::{Blob, Storage};

/// Whether a download was of the whole object (some doors record that, never per range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Whole,
    Part,
    Nothing,
}

/// Whether an `If-None-Match` list names `etag` (quoted), weakly or as `*` (RFC 9110
/// §13.1.2: weak comparison).
pub fn etag_listed(tags: &str, etag: &str) -> bool {
    tags.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

pub async fn respond(req: &HttpRequest, storage: &Storage, d: &Blob) -> Result<(HttpResponse, Served)> {
    let etag = format!("\"{}\"", d.etag);
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());

    // RFC 9110 §13.2.2 order: If-Match first. hawkBit clients echo the tag quoted or bare.
    if let Some(tags) = header(header::IF_MATCH)
        && !tags.split(',').map(str::trim).any(|t| t == "*" || t == etag || t == d.etag)
    {
        return Err(Error::PreconditionFailed(format!("the artifact's entity tag is {etag}")));
    }
    // §13.1.2: a client that has this exact entity needs no body.
    if header(header::IF_NONE_MATCH).is_some_and(|tags| etag_listed(tags, &etag)) {
        let mut r = HttpResponse::NotModified();
        r.insert_header((header::ETAG, etag.clone()));
        return Ok((r.finish(), Served::Nothing));
    }

    let plan = match range::plan(header(header::RANGE), header(header::IF_RANGE), &etag, d.size) {
        Ok(plan) => plan,
        Err(RangeError::Malformed) => {
            return Err(Error::bad_request(
                "invalid_range",
                "the Range header is not a byte range (e.g. bytes=0-1023)",
            ));
        }
        Err(RangeError::Multiple) => return Err(Error::MultipleRanges { size: d.size }),
        Err(RangeError::Unsatisfiable) => return Err(Error::RangeNotSatisfiable { size: d.size }),
    };
    let (status, served) = match plan {
        Plan::Full => (StatusCode::OK, Served::Whole),
        Plan::Partial { .. } => (StatusCode::PARTIAL_CONTENT, Served::Part),
    };
    let (window, content_range) = plan.window(d.size);
    let length = window.end - window.start;

    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", d.filename)))
        .insert_header((header::CACHE_CONTROL, "private, no-transform"));
    if let Some(content_range) = content_range {
        response.insert_header((header::CONTENT_RANGE, content_range));
    }
    if req.method() == Method::HEAD {
        // actix sends no body for HEAD but takes Content-Length from the body's declared size.
        let nothing = futures_util::stream::empty::<std::result::Result<bytes::Bytes, actix_web::Error>>();
        return Ok((response.no_chunking(length).streaming(nothing), Served::Nothing));
    }
    let body = storage.download(&d.key, window).await?;
    let body = body.map(|chunk| chunk.map_err(actix_web::error::ErrorInternalServerError));
    Ok((response.no_chunking(length).streaming(body), served))
}
