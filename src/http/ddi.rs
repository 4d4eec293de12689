//! hawkBit DDI v1 under `/{tenant}/controller/v1/{controllerId}`: HAL JSON with absolute
//! links, `TargetToken`/`GatewayToken` authentication, 401 with an empty body and no
//! `WWW-Authenticate`, 200 with an empty body for feedback, ETag/304 on the poll, and the
//! same download code as the Leitwert door. Protocol facts: `shared/specs/hawkbit-ddi-dmf.md`.

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::download;
use super::routes::{Handler, Route};
use crate::domain::ddi::Deployment;
use crate::error::Error;
use crate::service::Hub;
use crate::service::action::{self, ArtifactInfo, DeploymentInfo};
use crate::service::ddi::{self as svc, Address, DdiAuth};

type HubData = web::Data<Hub>;

pub fn routes() -> Vec<Route> {
    let r = |method, path, handler: Handler| {
        Route::new("ddi", "/{tenant}/controller/v1/{controller}", method, path, handler)
    };
    vec![
        // the poll and artifact ranges first: they are most of the requests, and each
        // pattern tried before the right one costs a regex match
        r(Method::GET, "", |r| r.to(poll)),
        r(Method::GET, "/softwaremodules/{module}/artifacts/{file}", |r| r.to(artifact)),
        r(Method::HEAD, "/softwaremodules/{module}/artifacts/{file}", |r| r.to(artifact)),
        r(Method::PUT, "/configData", |r| r.to(config_data)),
        r(Method::GET, "/deploymentBase/{action}", |r| r.to(deployment_base)),
        r(Method::POST, "/deploymentBase/{action}/feedback", |r| r.to(deployment_feedback)),
        r(Method::GET, "/cancelAction/{action}", |r| r.to(cancel_action)),
        r(Method::POST, "/cancelAction/{action}/feedback", |r| r.to(cancel_feedback)),
        r(Method::GET, "/installedBase/{action}", |r| r.to(installed_base)),
        r(Method::PUT, "/installedBase", |r| r.to(report_installed)),
        r(Method::GET, "/confirmationBase", |r| r.to(confirmation_base)),
        r(Method::POST, "/confirmationBase/activateAutoConfirm", |r| r.to(activate_auto_confirm)),
        r(Method::POST, "/confirmationBase/deactivateAutoConfirm", |r| r.to(deactivate_auto_confirm)),
        r(Method::GET, "/confirmationBase/{action}", |r| r.to(confirmation_action)),
        r(Method::POST, "/confirmationBase/{action}/feedback", |r| r.to(confirmation_feedback)),
        r(Method::GET, "/softwaremodules/{module}/artifacts", |r| r.to(artifacts)),
    ]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    super::routes::mount(cfg, "", &routes());
}

/// DDI renders errors its own way: 401 is empty (hawkBit clients look at the status only,
/// and a `WWW-Authenticate` would invite browsers to prompt); the rest keep the JSON shape.
#[derive(Debug)]
pub struct DdiError(Error);

impl std::fmt::Display for DdiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Error> for DdiError {
    fn from(e: Error) -> Self {
        DdiError(e)
    }
}

impl ResponseError for DdiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        match &self.0 {
            Error::Unauthorized(why) => {
                tracing::info!(why, "DDI request refused");
                HttpResponse::Unauthorized().finish()
            }
            other => other.error_response(),
        }
    }
}

type Result<T> = std::result::Result<T, DdiError>;

fn address(req: &HttpRequest) -> Address {
    Address { tenant: param(req, "tenant"), controller_id: param(req, "controller") }
}

fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_owned()
}

/// `TargetToken <token>` or `GatewayToken <token>` (hawkBit: exact prefix, one space).
fn credentials(req: &HttpRequest) -> DdiAuth {
    let Some(value) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return DdiAuth::None;
    };
    if let Some(t) = value.strip_prefix("TargetToken ").filter(|t| !t.trim().is_empty()) {
        return DdiAuth::Target(t.trim().to_owned());
    }
    if let Some(t) = value.strip_prefix("GatewayToken ").filter(|t| !t.trim().is_empty()) {
        return DdiAuth::Gateway(t.trim().to_owned());
    }
    DdiAuth::None
}

/// How an answer is written: HAL JSON by default, plain JSON or CBOR when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Hal,
    Json,
    Cbor,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::Hal => "application/hal+json",
            Media::Json => "application/json",
            Media::Cbor => "application/cbor",
        }
    }
}

/// HAL by default; plain JSON or CBOR when asked for; 406 for anything else.
fn media_type(req: &HttpRequest) -> Result<Media> {
    let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Media::Hal);
    };
    let kinds: Vec<String> =
        accept.split(',').map(|k| k.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()).collect();
    let has = |k: &str| kinds.iter().any(|x| x == k);
    if has("application/hal+json") || has("*/*") || has("application/*") || has("") {
        Ok(Media::Hal)
    } else if has("application/json") {
        Ok(Media::Json)
    } else if has("application/cbor") {
        Ok(Media::Cbor)
    } else {
        Err(Error::NotAcceptable("DDI answers application/hal+json, application/json or application/cbor".into())
            .into())
    }
}

/// The body of a DDI request, read only once its credentials hold: they are checked from the
/// headers first (as the admin API's extractors do), so a caller without valid credentials
/// is answered 401 at once and cannot hold a connection open by trickling a body. The body
/// itself is at most [`JSON_LIMIT`](super::JSON_LIMIT) bytes and must arrive within
/// `ddi_body_timeout_secs` (408 after).
async fn authenticated_body(hub: &HubData, req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes> {
    svc::check_credentials(hub, address(req), credentials(req)).await?;
    let limit = std::time::Duration::from_secs(hub.settings.ddi_body_timeout_secs);
    match tokio::time::timeout(limit, payload.to_bytes_limited(super::JSON_LIMIT)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(e))) => Err(Error::bad_request("invalid_body", format!("the body could not be read: {e}")).into()),
        Ok(Err(_)) => Err(Error::PayloadTooLarge(format!("DDI bodies are at most {} bytes", super::JSON_LIMIT)).into()),
        Err(_) => Err(Error::RequestTimeout(format!(
            "the body did not arrive within {} s (ddi_body_timeout_secs)",
            limit.as_secs()
        ))
        .into()),
    }
}

/// Reads a JSON or CBOR body (by `Content-Type`, charset allowed); unknown fields are ignored.
fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let invalid = |e: String| {
        DdiError::from(Error::bad_request("invalid_body", format!("the body is not a valid DDI message: {e}")))
    };
    match content_type.as_str() {
        "application/json" | "application/hal+json" => serde_json::from_slice(body).map_err(|e| invalid(e.to_string())),
        "application/cbor" => ciborium::from_reader(body).map_err(|e| invalid(e.to_string())),
        _ => Err(Error::UnsupportedMediaType("DDI bodies are application/json or application/cbor".into()).into()),
    }
}

/// An answer (HAL JSON, JSON or CBOR) with a shallow ETag over its body; `If-None-Match` with it → 304.
fn hal(req: &HttpRequest, media: Media, body: &Value) -> Result<HttpResponse> {
    let bytes = match media {
        Media::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(body, &mut out).map_err(|e| Error::internal(e.to_string()))?;
            out
        }
        Media::Hal | Media::Json => serde_json::to_vec(body).map_err(|e| Error::internal(e.to_string()))?,
    };
    let etag = format!("\"0{}\"", hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes)));
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| download::etag_listed(tags, &etag));
    if unchanged {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    Ok(HttpResponse::Ok().insert_header((header::ETAG, etag)).content_type(media.content_type()).body(bytes))
}

/// Absolute links under the device's base, from the public URL (never localhost by accident).
struct Links {
    base: url::Url,
}

impl Links {
    fn new(hub: &Hub, at: &Address) -> Links {
        let mut base = hub.public_url.clone();
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty().extend([at.tenant.as_str(), "controller", "v1", at.controller_id.as_str()]);
        }
        Links { base }
    }

    fn href(&self, tail: &[&str], query: Option<String>) -> Value {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(tail);
        }
        url.set_query(query.as_deref());
        json!({ "href": url.as_str() })
    }
}

/// `?actionHistory=n` (0 when absent; `c` and unknown parameters are accepted and ignored).
#[derive(Debug, Default, Deserialize)]
struct HistoryQuery {
    #[serde(rename = "actionHistory", default)]
    action_history: Option<String>,
}

fn history_count(q: &HistoryQuery) -> Result<i64> {
    match q.action_history.as_deref() {
        None | Some("") => Ok(0),
        Some(n) => n.parse().map_err(|_| Error::invalid("actionHistory must be a number").into()),
    }
}

fn deployment_json(d: &Deployment) -> Value {
    let mut v = json!({ "download": d.download.as_str(), "update": d.update.as_str() });
    if let Some(open) = d.window_open {
        v["maintenanceWindow"] = json!(if open { "available" } else { "unavailable" });
    }
    v
}

fn artifact_json(links: &Links, a: &ArtifactInfo) -> Value {
    let module = a.module.to_string();
    let file = links.href(&["softwaremodules", &module, "artifacts", &a.filename], None);
    let md5 = links.href(&["softwaremodules", &module, "artifacts", &format!("{}.MD5SUM", a.filename)], None);
    json!({
        "filename": a.filename,
        "hashes": { "sha1": a.digests.sha1, "md5": a.digests.md5, "sha256": a.digests.sha256 },
        "size": a.digests.size,
        "_links": { "download": file, "download-http": file, "md5sum": md5, "md5sum-http": md5 },
    })
}

fn deployment_body(links: &Links, info: &DeploymentInfo, key: &str) -> Value {
    let mut deployment = deployment_json(&info.deployment);
    deployment["chunks"] = json!([{
        "part": "os",
        "version": info.version,
        "name": info.chunk_name,
        "artifacts": info.artifacts.iter().map(|a| artifact_json(links, a)).collect::<Vec<_>>(),
    }]);
    let mut body = json!({ "id": info.number.to_string(), key: deployment });
    if let Some((status, messages)) = &info.history {
        body["actionHistory"] = json!({ "status": status, "messages": messages });
    }
    body
}

/// Counts a feedback in `/metrics` by its status.
fn count_feedback(kind: &'static str, f: &svc::Feedback) {
    let labels = crate::metrics::FeedbackLabels {
        kind,
        execution: f.status.execution.as_str(),
        finished: f.status.result.finished.as_str(),
    };
    crate::metrics::get().feedback.get_or_create(&labels).inc();
}

// ---- handlers -------------------------------------------------------------------------------

/// The poll: the polling interval and links to what the device should do. Counted in
/// `/metrics` by result.
async fn poll(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    let answer = poll_answer(&hub, &req).await;
    let result = match &answer {
        Ok(r) if r.status() == StatusCode::NOT_MODIFIED => "304",
        Ok(_) => "200",
        Err(e) if e.status_code() == StatusCode::UNAUTHORIZED => "401",
        Err(_) => "other",
    };
    crate::metrics::get().ddi_polls.get_or_create(&crate::metrics::ResultLabels { result }).inc();
    answer
}

async fn poll_answer(hub: &HubData, req: &HttpRequest) -> Result<HttpResponse> {
    let media = media_type(req)?;
    let at = address(req);
    let links = Links::new(hub, &at);
    let p = svc::poll(hub, at, credentials(req)).await?;
    let mut hal_links = serde_json::Map::new();
    if let Some((rel, number, c)) = p.action {
        let n = number.to_string();
        hal_links.insert(rel.into(), links.href(&[rel, &n], c.map(|c| format!("c={c}"))));
    }
    if let Some(n) = p.installed {
        hal_links.insert("installedBase".into(), links.href(&["installedBase", &n.to_string()], None));
    }
    if p.config_data {
        hal_links.insert("configData".into(), links.href(&["configData"], None));
    }
    let mut body = json!({ "config": { "polling": { "sleep": p.sleep } } });
    if !hal_links.is_empty() {
        body["_links"] = Value::Object(hal_links);
    }
    hal(req, media, &body)
}

async fn config_data(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let data = json_body(&req, &authenticated_body(&hub, &req, payload).await?)?;
    svc::config_data(&hub, address(&req), credentials(&req), data).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn deployment_base(hub: HubData, req: HttpRequest, q: web::Query<HistoryQuery>) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let at = address(&req);
    let links = Links::new(&hub, &at);
    let info = svc::deployment_base(&hub, at, credentials(&req), param(&req, "action"), history_count(&q)?).await?;
    hal(&req, media, &deployment_body(&links, &info, "deployment"))
}

async fn deployment_feedback(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let feedback: svc::Feedback = json_body(&req, &authenticated_body(&hub, &req, payload).await?)?;
    count_feedback("deployment", &feedback);
    svc::deployment_feedback_for(&hub, address(&req), credentials(&req), param(&req, "action"), feedback).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn cancel_action(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let n = svc::cancel_action(&hub, address(&req), credentials(&req), param(&req, "action")).await?.to_string();
    hal(&req, media, &json!({ "id": n, "cancelAction": { "stopId": n } }))
}

async fn cancel_feedback(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let feedback: svc::Feedback = json_body(&req, &authenticated_body(&hub, &req, payload).await?)?;
    count_feedback("cancel", &feedback);
    svc::cancel_feedback_for(&hub, address(&req), credentials(&req), param(&req, "action"), feedback).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn installed_base(hub: HubData, req: HttpRequest, q: web::Query<HistoryQuery>) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let at = address(&req);
    let links = Links::new(&hub, &at);
    let info = svc::installed_base(&hub, at, credentials(&req), param(&req, "action"), history_count(&q)?).await?;
    hal(&req, media, &deployment_body(&links, &info, "deployment"))
}

async fn report_installed(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let report = json_body(&req, &authenticated_body(&hub, &req, payload).await?)?;
    let changed = svc::report_installed(&hub, address(&req), credentials(&req), report).await?;
    Ok(if changed { HttpResponse::Created().finish() } else { HttpResponse::Ok().finish() })
}

async fn confirmation_base(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let at = address(&req);
    let links = Links::new(&hub, &at);
    let base = svc::confirmation_base(&hub, at, credentials(&req)).await?;
    let mut hal_links = serde_json::Map::new();
    let auto = match &base.auto_confirm {
        Some(a) => {
            hal_links.insert(
                "deactivateAutoConfirm".into(),
                links.href(&["confirmationBase", "deactivateAutoConfirm"], None),
            );
            let mut v = json!({ "active": true, "activatedAt": a.activated_at });
            if let Some(i) = &a.initiator {
                v["initiator"] = json!(i);
            }
            if let Some(r) = &a.remark {
                v["remark"] = json!(r);
            }
            v
        }
        None => {
            hal_links
                .insert("activateAutoConfirm".into(), links.href(&["confirmationBase", "activateAutoConfirm"], None));
            json!({ "active": false })
        }
    };
    if let Some((n, c)) = base.waiting {
        hal_links.insert(
            "confirmationBase".into(),
            links.href(&["confirmationBase", &n.to_string()], Some(format!("c={c}"))),
        );
    }
    hal(&req, media, &json!({ "autoConfirm": auto, "_links": hal_links }))
}

async fn confirmation_action(hub: HubData, req: HttpRequest, q: web::Query<HistoryQuery>) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let at = address(&req);
    let links = Links::new(&hub, &at);
    let info = svc::confirmation_action(&hub, at, credentials(&req), param(&req, "action"), history_count(&q)?).await?;
    hal(&req, media, &deployment_body(&links, &info, "confirmation"))
}

async fn confirmation_feedback(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let consent = json_body(&req, &authenticated_body(&hub, &req, payload).await?)?;
    svc::consent(&hub, address(&req), credentials(&req), param(&req, "action"), consent).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn activate_auto_confirm(hub: HubData, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let body = authenticated_body(&hub, &req, payload).await?;
    let input = if body.is_empty() { svc::ActivateAutoConfirm::default() } else { json_body(&req, &body)? };
    svc::activate_auto_confirm(&hub, address(&req), credentials(&req), input).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn deactivate_auto_confirm(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    svc::deactivate_auto_confirm(&hub, address(&req), credentials(&req)).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn artifacts(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    let media = media_type(&req)?;
    let at = address(&req);
    let links = Links::new(&hub, &at);
    let list = svc::artifacts(&hub, at, credentials(&req), param(&req, "module")).await?;
    hal(&req, media, &Value::Array(list.iter().map(|a| artifact_json(&links, a)).collect()))
}

/// The artifact (whole or one range), or its `.MD5SUM` line.
async fn artifact(hub: HubData, req: HttpRequest) -> Result<HttpResponse> {
    let file = param(&req, "file");
    let (name, md5sum) = match file.strip_suffix(".MD5SUM") {
        Some(name) => (name.to_owned(), true),
        None => (file.clone(), false),
    };
    let found = svc::artifact(&hub, address(&req), credentials(&req), param(&req, "module"), name).await?;
    if md5sum {
        if req.method() == Method::GET {
            // hawkBit logs the checksum fetch like a download
            let served = action::Served::Whole { bytes: 0 };
            svc::note_download(&hub, found.session_id.clone(), req.uri().to_string(), served).await?;
        }
        let disposition = format!("attachment;filename={}.MD5SUM", found.artifact.filename);
        let body = format!("{}  {}", found.artifact.digests.md5, found.artifact.filename);
        let mut r = HttpResponse::Ok();
        r.content_type("text/plain").insert_header((header::CONTENT_DISPOSITION, disposition));
        return Ok(if req.method() == Method::HEAD { r.finish() } else { r.body(body) });
    }
    let blob = match found.body {
        svc::ArtifactBody::Stored(blob) => blob,
        svc::ArtifactBody::Attached(text) => {
            if req.method() == Method::GET {
                svc::note_download(&hub, found.session_id, req.uri().to_string(), action::Served::Whole { bytes: 0 })
                    .await?;
            }
            let disposition = format!("attachment;filename={}", found.artifact.filename);
            let mut r = HttpResponse::Ok();
            r.content_type("application/octet-stream")
                .insert_header((header::CONTENT_DISPOSITION, disposition))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
            return Ok(r.body(text)); // actix answers HEAD with the headers only
        }
    };
    let (mut response, served) = match download::respond(&req, &hub.storage, &blob, "ddi").await {
        Ok(answer) => answer,
        // hawkBit answers 416 with no body: a client that appends every answer to its
        // partial file must not find an error message in it
        Err(Error::RangeNotSatisfiable { size } | Error::MultipleRanges { size }) => {
            let answer = HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish();
            return Ok(answer);
        }
        Err(e) => return Err(e.into()),
    };
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(served) = served {
        svc::note_download(&hub, found.session_id, req.uri().to_string(), served).await?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    //! Property tests: whatever a device sends as a body, decoding it (and the pure rules its
    //! fields go through next) never panics and never ends in a 5xx.

    use actix_web::test::TestRequest;
    use proptest::prelude::*;
    use serde_json::Map;

    use super::*;
    use crate::domain::{attributes, ddi as rules, version::FirmwareVersion};

    /// DDI's own words, so that arbitrary JSON often looks like a real message.
    const WORDS: &[&str] = &[
        "status",
        "execution",
        "result",
        "finished",
        "details",
        "progress",
        "cnt",
        "of",
        "code",
        "data",
        "mode",
        "name",
        "version",
        "confirmation",
        "remark",
        "initiator",
        "id",
        "time",
        "closed",
        "proceeding",
        "canceled",
        "scheduled",
        "rejected",
        "resumed",
        "downloaded",
        "download",
        "success",
        "failure",
        "none",
        "merge",
        "replace",
        "remove",
        "confirmed",
        "denied",
        "1.0.0",
        "v2",
        "",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![prop::sample::select(WORDS).prop_map(str::to_owned), any::<String>()]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// A body: arbitrary bytes, or some JSON as JSON or as CBOR.
    fn body() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
        let content_type = prop::sample::select(vec![
            "application/json",
            "application/hal+json; charset=UTF-8",
            "application/cbor",
            "text/plain",
            "",
        ]);
        prop_oneof![
            (any::<Vec<u8>>(), content_type),
            json().prop_map(|v| (serde_json::to_vec(&v).unwrap_or_default(), "application/json")),
            json().prop_map(|v| {
                let mut out = Vec::new();
                ciborium::into_writer(&v, &mut out).unwrap_or_default();
                (out, "application/cbor")
            }),
        ]
    }

    fn request(content_type: &str) -> HttpRequest {
        let mut r = TestRequest::default();
        if !content_type.is_empty() {
            r = r.insert_header((header::CONTENT_TYPE, content_type));
        }
        r.to_http_request()
    }

    /// Decodes a body as `T`; an error must be the client's (4xx).
    fn decode<T: DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> Option<T> {
        match json_body::<T>(req, bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                assert!(e.status_code().is_client_error(), "{e}");
                None
            }
        }
    }

    fn client_error(e: Error) {
        assert!((400..500).contains(&e.status()), "{e}");
    }

    proptest! {
        #[test]
        fn bodies_never_panic_nor_fail_the_server((bytes, content_type) in body(), current in json()) {
            let req = request(content_type);
            if let Some(f) = decode::<svc::Feedback>(&req, &bytes) {
                let (execution, finished) = (f.status.execution, f.status.result.finished);
                for action in [rules::ActionType::Forced, rules::ActionType::Soft, rules::ActionType::DownloadOnly] {
                    let _ = rules::deployment_feedback(action, execution, finished);
                }
                let _ = rules::cancel_feedback(execution, finished);
            }
            if let Some(c) = decode::<svc::ConfigData>(&req, &bytes) {
                let current = current.as_object().cloned().unwrap_or_default();
                match attributes::apply(&current, c.mode.unwrap_or_default(), &c.data) {
                    Ok(next) => prop_assert!(attributes::validate(&next).is_ok()),
                    Err(e) => client_error(e.into()),
                }
            }
            if let Some(r) = decode::<svc::InstalledReport>(&req, &bytes)
                && let Err(e) = FirmwareVersion::parse_lenient("version", &r.version)
            {
                client_error(e);
            }
            let _ = decode::<svc::ConsentFeedback>(&req, &bytes);
            let _ = decode::<svc::ActivateAutoConfirm>(&req, &bytes);
        }

        /// Attributes: whatever the current map and the update, the result obeys the rules
        /// (at most 100 printable entries) or the update is refused as the client's error.
        #[test]
        fn attributes_stay_within_the_rules(
            current in prop::collection::vec((text(), text()), 0..120),
            data in prop::collection::vec((text(), json()), 0..120),
            mode in prop::sample::select(vec![attributes::Mode::Merge, attributes::Mode::Replace, attributes::Mode::Remove]),
        ) {
            let current: Map<String, Value> = current.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            let data: Map<String, Value> = data.into_iter().collect();
            match attributes::apply(&current, mode, &data) {
                Ok(next) => {
                    prop_assert!(next.len() <= attributes::MAX_ATTRIBUTES);
                    prop_assert!(attributes::validate(&next).is_ok());
                }
                Err(e) => client_error(e.into()),
            }
            if let Err(e) = attributes::validate(&current) {
                client_error(e.into());
            }
        }
    }
}
