//! The one error type of the core. Every door renders it the same way:
//! `{"error": "<stable code>", "detail": "<human text>", ...extra}` with the status of
//! [`Error::status`]. Codes are part of the API: clients may match on them, so never
//! rename one (add a new one instead).
//!
//! Rules (after crates.io `util/errors.rs`): services and `db::*` return `Result<_, Error>`;
//! `anyhow` only at the edges (CLI, start-up, job internals), where it becomes
//! [`Error::Internal`] whose detail is logged, never sent.

use serde_json::{Map, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or fails validation.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 401: no credentials, or credentials that are not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid credentials without the right.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the object does not exist (or no longer does).
    #[error("{0}")]
    NotFound(String),
    /// 405: the operation does not apply to the object now (hawkBit: cancel feedback on an
    /// action that is not being canceled).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406: the client accepts no media type we answer in.
    #[error("{0}")]
    NotAcceptable(String),
    /// 408: the request body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 409: the request conflicts with the current state (duplicate handle, wrong session
    /// state, object in use). `extra` adds fields such as the current session state.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String, extra: Map<String, Value> },
    /// 410: the object existed but is gone for good.
    #[error("{0}")]
    Gone(String),
    /// 412: a precondition (`If-Match`) does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body has a content type we do not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 416: a byte range outside the object; `size` goes into `Content-Range: bytes */size`.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// 416: several ranges in one request; refused (RFC 9110 §15.5.17 allows it), one at a time works.
    #[error("only one byte range per request is supported; ask for the ranges one by one")]
    MultipleRanges { size: u64 },
    /// 422: well-formed but semantically wrong (checksum mismatch, image missing).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// 429: too many requests or a quota is exhausted.
    #[error("{0}")]
    TooManyRequests(String),
    /// 409 `concurrent_update`: the database aborted the transaction for a deadlock or a
    /// serialization failure. Nothing of it was kept; it is retried before anyone sees it
    /// (`db::write_transaction_retrying`).
    #[error("{0}")]
    Contention(String),
    /// 503: a dependency (database, object store) is not reachable.
    #[error("{0}")]
    Unavailable(String),
    /// 503 `object_quarantined`: the stored object's bytes no longer match the size and
    /// SHA-256 recorded when it was written (the integrity scrub found it); it is not served.
    #[error("{0}")]
    Quarantined(String),
    /// 507 `storage_full`: the object store or the database has no space left (ENOSPC,
    /// SQLite's `SQLITE_FULL`, PostgreSQL's `53100 disk_full`). Nothing of the write was
    /// kept; it may be repeated once space is freed.
    #[error("{0}")]
    StorageFull(String),
    /// 500: a bug or an unexpected failure; the detail is logged, not sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Error::BadRequest { code, detail: detail.into() }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::bad_request("invalid", detail)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Conflict { code, detail: detail.into(), extra: Map::new() }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::Forbidden(detail.into())
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Unprocessable { code, detail: detail.into() }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{detail}"))
    }

    /// Adds a field to a conflict's JSON body (e.g. `"state": "ready"`).
    pub fn with_extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Error::Conflict { extra, .. } = &mut self {
            extra.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A transaction the database aborted because of another one; safe to run again.
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Contention(_))
    }

    /// The HTTP status as a number, so this module stays free of any web framework.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest { .. } => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::NotAcceptable(_) => 406,
            Error::RequestTimeout(_) => 408,
            Error::Conflict { .. } | Error::Contention(_) => 409,
            Error::Gone(_) => 410,
            Error::PreconditionFailed(_) => 412,
            Error::PayloadTooLarge(_) => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::RangeNotSatisfiable { .. } | Error::MultipleRanges { .. } => 416,
            Error::Unprocessable { .. } => 422,
            Error::TooManyRequests(_) => 429,
            Error::Unavailable(_) | Error::Quarantined(_) => 503,
            Error::StorageFull(_) => 507,
            Error::Internal(_) => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest { code, .. } => code,
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::NotAcceptable(_) => "not_acceptable",
            Error::RequestTimeout(_) => "request_timeout",
            Error::Conflict { code, .. } => code,
            Error::Contention(_) => "concurrent_update",
            Error::Gone(_) => "gone",
            Error::PreconditionFailed(_) => "precondition_failed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Error::MultipleRanges { .. } => "multiple_ranges",
            Error::Unprocessable { code, .. } => code,
            Error::TooManyRequests(_) => "too_many_requests",
            Error::Unavailable(_) => "unavailable",
            Error::Quarantined(_) => "object_quarantined",
            Error::StorageFull(_) => "storage_full",
            Error::Internal(_) => "internal",
        }
    }

    /// The JSON body every door sends.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), self.code().into());
        let detail = match self {
            // Never leak internals; the log has the chain.
            Error::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        body.insert("detail".into(), detail.into());
        match self {
            Error::Conflict { extra, .. } => body.extend(extra.clone()),
            Error::RangeNotSatisfiable { size } | Error::MultipleRanges { size } => {
                body.insert("size".into(), (*size).into());
            }
            _ => {}
        }
        Value::Object(body)
    }
}

impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match err {
            D::NotFound => Error::NotFound("not found".into()),
            D::DatabaseError(K::UniqueViolation, info) => Error::conflict(
                "already_exists",
                format!("an object with these values already exists ({})", info.message()),
            ),
            D::DatabaseError(K::ForeignKeyViolation, _) => Error::conflict(
                "in_use",
                "the object is referenced by other objects, or references one that does not exist",
            ),
            D::DatabaseError(K::SerializationFailure, info) => Error::Contention(format!(
                "the database aborted a transaction that raced another; try again ({})",
                info.message()
            )),
            // PostgreSQL's 40P01 has no kind of its own in diesel
            D::DatabaseError(K::Unknown, info) if info.message().contains("deadlock detected") => Error::Contention(
                format!("the database aborted a transaction that raced another; try again ({})", info.message()),
            ),
            D::DatabaseError(_, info) if is_disk_full(info.as_ref()) => {
                Error::StorageFull(format!("the database has no space left: {}", info.message()))
            }
            D::DatabaseError(K::ClosedConnection, info) => {
                Error::Unavailable(format!("database connection lost: {}", info.message()))
            }
            other => Error::Internal(anyhow::Error::new(other).context("database query failed")),
        }
    }
}

/// Whether the database refused a write for lack of space. SQLite says `SQLITE_FULL` as
/// "database or disk is full". PostgreSQL's `53100 disk_full` is not exposed by diesel (it
/// keeps the SQLSTATE to itself), so it is known by its message ("could not extend file …:
/// No space left on device") or its hint ("Check free disk space."), as the server writes
/// them with `lc_messages` in English (the default, `C`).
fn is_disk_full(info: &dyn diesel::result::DatabaseErrorInformation) -> bool {
    let message = info.message();
    message.contains("database or disk is full")
        || message.contains("No space left on device")
        || info.hint().is_some_and(|h| h.contains("Check free disk space"))
}

/// Whether an I/O error anywhere in `err`'s chain of causes says the disk is full
/// (ENOSPC, or a quota: EDQUOT).
pub fn is_out_of_space(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Remembers that a component (the object store, the database) answered `storage_full`,
/// until a write succeeds again: what `/readyz` reports. Local to the process, as readiness is.
#[derive(Debug, Default)]
pub struct SpaceLatch(std::sync::Mutex<Option<String>>);

impl SpaceLatch {
    /// Notes `err` if it is [`Error::StorageFull`]; gives it back either way.
    pub fn note(&self, err: Error) -> Error {
        if let Error::StorageFull(detail) = &err
            && let Ok(mut last) = self.0.lock()
        {
            *last = Some(detail.clone());
        }
        err
    }

    pub fn clear(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = None;
        }
    }

    /// What the last `storage_full` said, if no write succeeded since.
    pub fn last(&self) -> Option<String> {
        self.0.lock().ok().and_then(|last| last.clone())
    }
}

impl From<r2d2::Error> for Error {
    fn from(err: r2d2::Error) -> Self {
        Error::Unavailable(format!("database unavailable: {err}"))
    }
}
