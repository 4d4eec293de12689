//! Serves an object from the store to a device: whole, or one byte range, streamed.
//! Every download in every door (firmware-update sessions, the admin image download,
//! hawkBit artifacts) goes through [`respond`], which may also send the client to the store
//! (`storage::Redirect`) once the download is checked.

use std::time::SystemTime;

use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::range::{self, Plan, RangeError};
use crate::error::{Error, Result};
pub use crate::service::action::Served;
use crate::storage::{Blob, Storage};

/// Whether an `If-None-Match` list names `etag` (quoted), weakly or as `*` (RFC 9110
/// §13.1.2: weak comparison).
pub fn etag_listed(tags: &str, etag: &str) -> bool {
    tags.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// A time as an HTTP date, which has whole seconds (so it compares with what clients echo).
fn whole_seconds(t: chrono::NaiveDateTime) -> HttpDate {
    let secs = u64::try_from(t.and_utc().timestamp()).unwrap_or_default();
    HttpDate::from(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// An HTTP date (RFC 9110 §5.6.7); anything else is ignored, as the RFC asks.
fn http_date(value: &str) -> Option<HttpDate> {
    value.parse().ok()
}

/// The answer, and what it served (none: a 304 or a HEAD). Sessions' doors record that
/// (`service::action::note_download`); `/metrics` counts it under `door`.
pub async fn respond(
    req: &HttpRequest,
    storage: &Storage,
    d: &Blob,
    door: &'static str,
) -> Result<(HttpResponse, Option<Served>)> {
    let etag = format!("\"{}\"", d.etag);
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());

    // RFC 9110 §13.2.2 order: If-Match first. hawkBit clients echo the tag quoted or bare.
    if let Some(tags) = header(header::IF_MATCH)
        && !tags.split(',').map(str::trim).any(|t| t == "*" || t == etag || t == d.etag)
    {
        return Err(Error::PreconditionFailed(format!("the artifact's entity tag is {etag}")));
    }
    let modified = d.modified.map(whole_seconds);
    // §13.1.4: If-Unmodified-Since only without If-Match.
    if header(header::IF_MATCH).is_none()
        && let (Some(m), Some(since)) = (modified, header(header::IF_UNMODIFIED_SINCE).and_then(http_date))
        && m > since
    {
        return Err(Error::PreconditionFailed(format!("the artifact changed since {since}")));
    }
    // §13.1.2: a client that has this exact entity needs no body; §13.1.3: If-Modified-Since
    // only without If-None-Match, and only for GET and HEAD.
    let none_match = header(header::IF_NONE_MATCH);
    let unchanged = match none_match {
        Some(tags) => etag_listed(tags, &etag),
        None => {
            matches!((modified, header(header::IF_MODIFIED_SINCE).and_then(http_date)), (Some(m), Some(since)) if m <= since)
        }
    };
    if unchanged {
        let mut r = HttpResponse::NotModified();
        r.insert_header((header::ETAG, etag.clone()));
        if let Some(m) = modified {
            r.insert_header((header::LAST_MODIFIED, m));
        }
        return Ok((r.finish(), None));
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
    let (window, content_range) = plan.window(d.size);
    let length = window.end - window.start;
    let (status, served) = match plan {
        Plan::Full => (StatusCode::OK, Served::Whole { bytes: length }),
        Plan::Partial { .. } => (StatusCode::PARTIAL_CONTENT, Served::Range { bytes: length }),
    };
    if req.method() == Method::GET
        && let Some(location) = storage.redirect_url(d).await?
    {
        // checked like any download; the store (or CDN) serves the bytes, the range included
        let mut r = HttpResponse::TemporaryRedirect();
        r.insert_header((header::LOCATION, location.as_str())).insert_header((header::CACHE_CONTROL, "no-store"));
        crate::metrics::get().download(door, length);
        return Ok((r.finish(), Some(served)));
    }

    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", d.filename)))
        .insert_header((header::CACHE_CONTROL, "private, no-transform"));
    if let Some(m) = modified {
        response.insert_header((header::LAST_MODIFIED, m));
    }
    if let Some(content_range) = content_range {
        response.insert_header((header::CONTENT_RANGE, content_range));
    }
    if req.method() == Method::HEAD {
        // actix sends no body for HEAD but takes Content-Length from the body's declared size.
        let nothing = futures_util::stream::empty::<std::result::Result<bytes::Bytes, actix_web::Error>>();
        return Ok((response.no_chunking(length).streaming(nothing), None));
    }
    let body = storage.download(&d.key, window).await?;
    crate::metrics::get().download(door, length);
    let body = body.map(|chunk| chunk.map_err(actix_web::error::ErrorInternalServerError));
    Ok((response.no_chunking(length).streaming(body), Some(served)))
}
