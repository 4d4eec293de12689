//! The OpenAPI 3.1 document of the JSON API (`GET /api/v1/openapi.json`, built with
//! `utoipa`), and the Swagger UI that reads it (`GET /api/v1/docs/`, its files compiled into
//! the binary: it works offline).
//!
//! The document is built from the route table (`http::routes()`), so its paths, methods,
//! path parameters and tags are the mounted ones. What the table does not say comes from
//! [`OPERATIONS`]: a summary, the request body and the answer of each route. Routes of the
//! usual shapes of a family (`GET /things`, `POST /things`, `GET|PATCH|PUT|DELETE
//! /things/{id}`) are described by [`conventional`]; every other route needs its line in
//! [`OPERATIONS`], or `cargo test` fails (`every_json_route_is_documented`). Typed schemas
//! come from `#[derive(utoipa::ToSchema)]` on the views; see README "Adding a route".

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError, web};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema,
};

use super::routes::{Route, RouteInfo};
use crate::service::devices::DeviceView;
use crate::service::session::request::{ConfirmRequest, UpdateRequest};
use crate::service::session::views::{ActionView, EventView, HistoryEntry, SessionView};

/// Families whose routes answer HTML, not JSON: not in the document.
const HTML_FAMILIES: &[&str] = &["ui", "pages"];

/// What a route takes and gives, beyond its place in the table.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// `METHOD /full/pattern`, as `RouteInfo` writes it.
    pub route: &'static str,
    pub summary: &'static str,
    pub request: Body,
    /// The status of a successful answer, and its body.
    pub answer: (u16, Body),
}

/// A request or answer body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// JSON of a named schema (registered in [`components`]).
    Json(&'static str),
    /// A list page (`count`, `next`, `previous`, `results`) of a named schema.
    Page(&'static str),
    /// JSON whose schema is not written down yet.
    AnyJson,
    /// Raw bytes (images, downloads).
    Bytes,
    /// Text (`/metrics`).
    Text,
}

use Body::{AnyJson, Bytes, Json, Page, Text};

const fn op(route: &'static str, summary: &'static str, request: Body, answer: (u16, Body)) -> Operation {
    Operation { route, summary, request, answer }
}

/// Every route that is not of a family's usual shape. One line per route: a new route that
/// is missing here fails `every_json_route_is_documented`.
pub const OPERATIONS: &[Operation] = &[
    op("GET /healthz", "The process answers", Body::None, (200, AnyJson)),
    op("GET /readyz", "The database and the object store answer and take writes", Body::None, (200, AnyJson)),
    op("GET /metrics", "Prometheus metrics (OpenMetrics text)", Body::None, (200, Text)),
    op("GET /api/v1/openapi.json", "This document", Body::None, (200, AnyJson)),
    op("GET /api/v1/docs{tail:.*}", "Swagger UI (offline: its files are compiled in)", Body::None, (200, Bytes)),
    // seed 003: firmware-update sessions
    op("GET /api/v1/firmware-update", "List sessions", Body::None, (200, Page("HistoryEntry"))),
    op(
        "POST /api/v1/firmware-update/request",
        "Ask for a firmware update: a session in ready or up_to_date",
        Json("UpdateRequest"),
        (201, Json("SessionView")),
    ),
    op("GET /api/v1/firmware-update/{id}", "A session (timers applied)", Body::None, (200, Json("SessionView"))),
    op(
        "POST /api/v1/firmware-update/{id}/start",
        "Start the pipeline (ready → queued)",
        Body::None,
        (200, Json("SessionView")),
    ),
    op(
        "POST /api/v1/firmware-update/{id}/confirm",
        "Report the installation (created → success | fail)",
        Json("ConfirmRequest"),
        (200, Json("SessionView")),
    ),
    op(
        "GET /api/v1/firmware-update/{id}/events",
        "The session's history, newest first",
        Body::None,
        (200, Json("EventList")),
    ),
    op(
        "POST /api/v1/firmware-update/{id}/cancel",
        "Withdraw a session (an assigned one the device works on is asked to cancel)",
        Body::None,
        (200, Json("SessionView")),
    ),
    op(
        "GET /api/v1/firmware-update/{id}/download",
        "The deliverable, whole or one byte range",
        Body::None,
        (200, Bytes),
    ),
    op("HEAD /api/v1/firmware-update/{id}/download", "The deliverable's headers", Body::None, (200, Body::None)),
    // firmware
    op("PUT /api/v1/firmware/{id}/image", "Upload the image (raw body) of a draft", Bytes, (200, AnyJson)),
    op("GET /api/v1/firmware/{id}/image", "Download the image, whole or one byte range", Body::None, (200, Bytes)),
    op("HEAD /api/v1/firmware/{id}/image", "The image's headers", Body::None, (200, Body::None)),
    op("POST /api/v1/firmware/{id}/release", "Release a draft", Body::None, (200, AnyJson)),
    op("POST /api/v1/firmware/{id}/assign", "Assign to devices (hawkBit actions)", AnyJson, (201, AnyJson)),
    // devices
    op(
        "GET /api/v1/devices/{id}/sessions",
        "The device's sessions, expired ones too",
        Body::None,
        (200, Page("HistoryEntry")),
    ),
    op(
        "POST /api/v1/devices/{id}/target-token",
        "A new hawkBit target token (shown in this answer only)",
        Body::None,
        (200, Json("DeviceView")),
    ),
    op(
        "POST /api/v1/devices/{id}/request-attributes",
        "Ask the device for its attributes (DDI: on its next poll; DMF: REQUEST_ATTRIBUTES_UPDATE at once)",
        Body::None,
        (200, Json("DeviceView")),
    ),
    // people
    op("POST /api/v1/users/{id}/password", "Set a user's web UI password", AnyJson, (204, Body::None)),
    op("GET /api/v1/users/{id}/tokens", "A user's API tokens", Body::None, (200, Page("Object"))),
    op("POST /api/v1/users/{id}/tokens", "A new API token (shown in this answer only)", AnyJson, (201, AnyJson)),
    op("GET /api/v1/users/{id}/tokens/{token}", "One API token (never its secret)", Body::None, (200, AnyJson)),
    op("DELETE /api/v1/users/{id}/tokens/{token}", "Revoke an API token", Body::None, (204, Body::None)),
    // hawkBit DDI v1
    op(
        "GET /{tenant}/controller/v1/{controller}",
        "Poll: the polling time and links to what to do",
        Body::None,
        (200, AnyJson),
    ),
    op("PUT /{tenant}/controller/v1/{controller}/configData", "Report attributes", AnyJson, (200, Body::None)),
    op(
        "GET /{tenant}/controller/v1/{controller}/deploymentBase/{action}",
        "The deployment of an action",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "POST /{tenant}/controller/v1/{controller}/deploymentBase/{action}/feedback",
        "Progress or result of a deployment",
        AnyJson,
        (200, Body::None),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/cancelAction/{action}",
        "A cancel request",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "POST /{tenant}/controller/v1/{controller}/cancelAction/{action}/feedback",
        "Confirm or refuse a cancel",
        AnyJson,
        (200, Body::None),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/installedBase/{action}",
        "The installed action",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "PUT /{tenant}/controller/v1/{controller}/installedBase",
        "Report the installed version",
        AnyJson,
        (200, Body::None),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/confirmationBase",
        "Auto-confirm state and the action waiting for consent",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "POST /{tenant}/controller/v1/{controller}/confirmationBase/activateAutoConfirm",
        "Consent to every action from now on",
        AnyJson,
        (200, Body::None),
    ),
    op(
        "POST /{tenant}/controller/v1/{controller}/confirmationBase/deactivateAutoConfirm",
        "Stop consenting automatically",
        Body::None,
        (200, Body::None),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/confirmationBase/{action}",
        "An action waiting for consent",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "POST /{tenant}/controller/v1/{controller}/confirmationBase/{action}/feedback",
        "Give or refuse consent",
        AnyJson,
        (200, Body::None),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts",
        "A module's artifacts",
        Body::None,
        (200, AnyJson),
    ),
    op(
        "GET /{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts/{file}",
        "An artifact (whole or one byte range; 416 has no body) or its .MD5SUM",
        Body::None,
        (200, Bytes),
    ),
    op(
        "HEAD /{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts/{file}",
        "An artifact's headers",
        Body::None,
        (200, Body::None),
    ),
];

/// The item schema of a family's conventional routes.
fn family_schema(family: &str) -> &'static str {
    match family {
        "devices" => "DeviceView",
        "sessions" => "SessionView",
        _ => "Object",
    }
}

/// A route of its family's usual shape: list, create, get, change, delete.
fn conventional(info: &RouteInfo, base: &str) -> Option<Operation> {
    let schema = family_schema(info.family);
    let tail = info.pattern.strip_prefix(base)?;
    let one = tail == "/{id}";
    let (summary, request, answer) = match (info.method.as_str(), tail.is_empty(), one) {
        ("GET", true, _) => ("List", Body::None, (200, Page(schema))),
        ("POST", true, _) => ("Create", AnyJson, (201, Json(schema))),
        ("GET", _, true) => ("Get one (by id or handle)", Body::None, (200, Json(schema))),
        ("PATCH", _, true) => ("Change some fields", AnyJson, (200, Json(schema))),
        ("PUT", _, true) => ("Change some fields (as PATCH)", AnyJson, (200, Json(schema))),
        ("DELETE", _, true) => ("Delete", Body::None, (204, Body::None)),
        _ => return None,
    };
    Some(Operation { route: "", summary, request, answer })
}

/// The family's base path: its list route, `/api/v1/<scope>`.
fn family_base(info: &RouteInfo) -> Option<String> {
    let rest = info.pattern.strip_prefix(super::API_PREFIX)?;
    let first = rest.split('/').nth(1)?;
    Some(format!("{}/{first}", super::API_PREFIX))
}

/// What the document says about a route; `None`: nothing yet (the test names it).
pub fn describe(info: &RouteInfo) -> Option<Operation> {
    let key = format!("{} {}", info.method, info.pattern);
    if let Some(o) = OPERATIONS.iter().find(|o| o.route == key) {
        return Some(*o);
    }
    conventional(info, &family_base(info)?)
}

fn tag_of(family: &str) -> &str {
    match family {
        "ddi" => "DDI",
        "sessions" => "firmware-update",
        f => f,
    }
}

fn http_method(m: &Method) -> Option<HttpMethod> {
    Some(match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => return None,
    })
}

/// The `{name}` and `{name:regex}` parameters of an actix pattern, and the pattern as an
/// OpenAPI path (`/docs{tail:.*}` → `/docs{tail}`).
fn parse_pattern(pattern: &str) -> (String, Vec<String>) {
    let (mut path, mut params) = (String::new(), Vec::new());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        let inner = &rest[open + 1..open + close];
        let name = inner.split(':').next().unwrap_or(inner);
        path.push_str(&format!("{{{name}}}"));
        params.push(name.to_owned());
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    (path, params)
}

/// An actix pattern as an OpenAPI path.
pub fn openapi_path(pattern: &str) -> String {
    parse_pattern(pattern).0
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    if name == "Object" {
        return ObjectBuilder::new().schema_type(Type::Object).into();
    }
    Ref::from_schema_name(name).into()
}

fn content(body: Body) -> Option<(&'static str, utoipa::openapi::Content)> {
    let any = || ObjectBuilder::new().into();
    let (media, schema): (&str, RefOr<Schema>) = match body {
        Body::None => return None,
        Json(name) => ("application/json", schema_ref(name)),
        Page(name) => {
            let page = ObjectBuilder::new()
                .property("count", ObjectBuilder::new().schema_type(Type::Integer))
                .property("next", ObjectBuilder::new().schema_type(Type::String))
                .property("previous", ObjectBuilder::new().schema_type(Type::String))
                .property("results", ArrayBuilder::new().items(schema_ref(name)))
                .required("count")
                .required("results");
            ("application/json", page.into())
        }
        AnyJson => ("application/json", any()),
        Bytes => {
            let binary = SchemaFormat::KnownFormat(KnownFormat::Binary);
            ("application/octet-stream", ObjectBuilder::new().schema_type(Type::String).format(Some(binary)).into())
        }
        Text => ("text/plain", ObjectBuilder::new().schema_type(Type::String).into()),
    };
    Some((media, ContentBuilder::new().schema(Some(schema)).build()))
}

/// The schemas the operations name.
fn components() -> utoipa::openapi::Components {
    let error = ObjectBuilder::new()
        .property("error", ObjectBuilder::new().schema_type(Type::String).description(Some("a stable code")))
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .required("error")
        .required("detail");
    let events = ArrayBuilder::new().items(Ref::from_schema_name("EventView"));
    ComponentsBuilder::new()
        .schema_from::<SessionView>()
        .schema_from::<ActionView>()
        .schema_from::<HistoryEntry>()
        .schema_from::<EventView>()
        .schema_from::<DeviceView>()
        .schema_from::<UpdateRequest>()
        .schema_from::<ConfirmRequest>()
        .schema("Error", error)
        .schema("EventList", events)
        .security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "'Token <api token>' (admin API); DDI: 'TargetToken <token>' or 'GatewayToken <token>'",
            ))),
        )
        .build()
}

/// The document, from the routes that are mounted.
pub fn document(routes: &[RouteInfo]) -> OpenApi {
    let mut paths = PathsBuilder::new().build();
    let mut tags: Vec<String> = Vec::new();
    for info in routes.iter().filter(|r| !HTML_FAMILIES.contains(&r.family) && r.pattern != "/") {
        let (Some(o), Some(method)) = (describe(info), http_method(&info.method)) else { continue };
        let tag = tag_of(info.family).to_owned();
        if !tags.contains(&tag) {
            tags.push(tag.clone());
        }
        let (path, params) = parse_pattern(&info.pattern);
        let mut operation = OperationBuilder::new()
            .summary(Some(o.summary))
            .operation_id(Some(format!(
                "{}{}",
                info.method.as_str().to_lowercase(),
                path.replace(['/', '{', '}', '.', '-'], "_")
            )))
            .tag(tag);
        for name in params {
            let p = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
            operation = operation.parameter(p);
        }
        if let Some((media, c)) = content(o.request) {
            operation = operation.request_body(Some(RequestBodyBuilder::new().content(media, c).build()));
        }
        let (status, body) = o.answer;
        let mut ok = ResponseBuilder::new().description("done");
        if let Some((media, c)) = content(body) {
            ok = ok.content(media, c);
        }
        let error = ResponseBuilder::new()
            .description("an error: a 4xx for the caller's mistake (DDI: 401 has no body)")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build());
        operation = operation.response(status.to_string(), ok.build()).response("default", error.build());
        paths.add_path_operation(path, vec![method], operation.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("devicehub")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .build(),
        )
        .paths(paths)
        .components(Some(components()))
        .tags(Some(tags.into_iter().map(|t| TagBuilder::new().name(t).build())))
        .build()
}

/// The document as served (built once).
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        document(&super::routes()).to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    });
    &JSON
}

// ---- routes ---------------------------------------------------------------------------------

pub fn routes() -> Vec<Route> {
    vec![
        Route::new("docs", "", Method::GET, "/openapi.json", |r| r.to(openapi_json)),
        Route::new("docs", "", Method::GET, "/docs{tail:.*}", |r| r.to(docs_ui)),
    ]
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(json())
}

/// Swagger UI's files, from the binary. `/docs` itself redirects to the page, whose files
/// load relative to it (the edge trims a trailing slash, so the page needs a file name).
async fn docs_ui(tail: web::Path<String>) -> HttpResponse {
    static CONFIG: LazyLock<std::sync::Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
        std::sync::Arc::new(utoipa_swagger_ui::Config::from(format!("{}/openapi.json", super::API_PREFIX)))
    });
    let tail = tail.into_inner();
    if tail.is_empty() {
        let page = format!("{}/docs/index.html", super::API_PREFIX);
        return HttpResponse::Found().insert_header((header::LOCATION, page)).finish();
    }
    let Some(file) = tail.strip_prefix('/').filter(|f| !f.is_empty()) else {
        return crate::error::Error::not_found("that file").error_response();
    };
    match utoipa_swagger_ui::serve(file, CONFIG.clone()) {
        Ok(Some(file)) => HttpResponse::Ok().content_type(file.content_type).body(file.bytes.to_vec()),
        Ok(None) => crate::error::Error::not_found("that file").error_response(),
        Err(e) => {
            tracing::error!(error = %e, "serving Swagger UI");
            HttpResponse::InternalServerError().finish()
        }
    }
}
