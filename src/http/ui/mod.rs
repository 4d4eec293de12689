//! The admin web UI under `/ui`: server-rendered pages (askama, `templates/ui/`), a
//! stylesheet and one small script embedded in the binary (`static/`). Handlers are as thin
//! as the REST API's and call the very same `service` functions, so the UI has exactly the
//! API's rights: a viewer sees and cannot change, a product-scoped user sees only their
//! products, and what one may not see answers like what does not exist.
//!
//! Every page sends a strict `Content-Security-Policy` (scripts and styles only from
//! `/ui/static`, nothing inline), every form carries the session's CSRF token, and answers
//! are never cached.

mod catalog;
mod firmware;
mod fleet;
mod forms;
mod overview;
mod people;

use std::collections::HashMap;

use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

use super::routes::{self, Handler, Route};
use super::web_session::SignedIn;
use crate::domain::rights::{Action, Scope};
use crate::error::Error;
use crate::service::web_sessions::Signed;
use crate::service::{Actor, Hub, ListParams, catalog as cat, product_scope};

pub use forms::{Form, Posted};

/// Where the UI is mounted.
pub const UI_PREFIX: &str = "/ui";

/// The policy every UI answer carries: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type HubData = web::Data<Hub>;

/// A UI route, relative to `/ui` (one family, mounted at the top of the UI's scope).
fn route(method: Method, path: &'static str, handler: Handler) -> Route {
    Route::new("ui", "", method, path, handler)
}

/// The UI's routes, relative to `/ui`.
pub fn routes() -> Vec<Route> {
    let r = route;
    let mut all = vec![
        r(Method::GET, "/static/{file}", |r| r.to(static_file)),
        r(Method::GET, "/sign-in", |r| r.to(overview::sign_in_page)),
        r(Method::POST, "/sign-in", |r| r.to(overview::sign_in)),
        r(Method::POST, "/sign-out", |r| r.to(overview::sign_out)),
        r(Method::GET, "", |r| r.to(overview::overview)),
    ];
    all.extend(catalog::routes());
    all.extend(firmware::routes());
    all.extend(fleet::routes());
    all.extend(people::routes());
    all
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::CACHE_CONTROL, "no-store"));
    cfg.service(
        web::scope(UI_PREFIX)
            .wrap(headers)
            .wrap_fn(super::input::refuse_nul_in_uri)
            .configure(|c| routes::mount(c, UI_PREFIX, &routes()))
            .default_service(web::to(not_found)),
    );
}

// ---- static files --------------------------------------------------------------------

/// The embedded stylesheet and script (and the script's licence).
const STATIC_FILES: &[(&str, &str, &str)] = &[
    ("ui.css", "text/css; charset=utf-8", include_str!("../../../static/ui.css")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("../../../static/ui.js")),
];

async fn static_file(file: web::Path<String>) -> HttpResponse {
    match STATIC_FILES.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *mime))
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The version the static links carry, so a new binary's files are fetched anew.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

// ---- what every page has -------------------------------------------------------------

/// The frame of every page: who is signed in, the CSRF token for its forms, where we are,
/// and what happened (a notice after a change, a problem when a change was refused).
pub struct Chrome {
    pub signed_in: bool,
    pub user: String,
    pub csrf: String,
    pub section: &'static str,
    /// Users are in the menu for global admins; everyone else has their account.
    pub people: bool,
    pub notice: Option<&'static str>,
    pub problem: Option<Problem>,
    pub asset_version: &'static str,
}

impl Chrome {
    pub fn new(s: &Signed, section: &'static str) -> Chrome {
        Chrome {
            signed_in: true,
            user: s.actor.username.clone(),
            csrf: s.csrf.clone(),
            section,
            people: s.actor.can(Action::Manage, Scope::Global),
            notice: None,
            problem: None,
            asset_version: ASSET_VERSION,
        }
    }

    /// The frame of a page for someone not signed in (sign-in, errors).
    pub fn anonymous() -> Chrome {
        Chrome {
            signed_in: false,
            user: String::new(),
            csrf: String::new(),
            section: "",
            people: false,
            notice: None,
            problem: None,
            asset_version: ASSET_VERSION,
        }
    }

    pub fn with(mut self, echo: &Echo) -> Chrome {
        self.notice = echo.notice;
        self.problem = echo.problem.clone();
        self
    }

    /// The nav link's `aria-current` for a section.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// An error in words: what the API's code means, and its detail.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub words: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn of(e: &Error) -> Problem {
        if let Error::Internal(inner) = e {
            tracing::error!(error = ?inner, "request failed");
        }
        let detail = match e.body()["detail"].as_str() {
            Some(d) => d.to_owned(),
            None => String::new(),
        };
        Problem { status: e.status(), code: e.code(), words: words(e.code()), detail }
    }
}

/// The API's stable error codes, in words.
pub fn words(code: &str) -> &'static str {
    match code {
        "invalid" | "invalid_body" | "invalid_json" | "invalid_query" => "Some of the input is not valid.",
        "unauthorized" => "You are not signed in, or the credentials are wrong.",
        "forbidden" => "You may not do this.",
        "not_found" => "There is no such thing, or you may not see it.",
        "already_exists" => "Something with this name or handle already exists.",
        "reserved_handle" => "This handle is reserved.",
        "in_use" => "It is still in use; remove what depends on it first.",
        "firmware_released" => "The firmware is released and can no longer change.",
        "last_admin" => "This would leave nobody who can manage people.",
        "cannot_delete_self" => "You cannot delete yourself.",
        "session_state" => "The session is not in a state that allows this.",
        "no_deliverable" => "The session has nothing to download.",
        "firmware_not_released" => "Only released firmware can be assigned.",
        "concurrent_update" => "Someone else changed it at the same moment; try again.",
        "auto_confirm_active" => "The device confirms updates on its own.",
        "payload_too_large" => "The file is too large.",
        "too_many_requests" => "Too many attempts; wait a little.",
        "unknown_reference" => "It names something that does not exist, or that you may not see.",
        "checksum_mismatch" => "The file's checksum does not match.",
        "empty_image" => "The file is empty.",
        "image_missing" => "Upload an image first.",
        "unavailable" => "The database or the object store cannot be reached right now.",
        "storage_full" => "The server's storage is full.",
        "object_quarantined" => "A stored file failed its integrity check and is held back.",
        "gone" => "It is gone for good.",
        "request_timeout" => "The request took too long to arrive.",
        "unsupported_media_type" => "The server does not read that kind of content.",
        "method_not_allowed" => "That cannot be done to it now.",
        "upload_interrupted" => "The upload was interrupted.",
        _ => "Something went wrong.",
    }
}

/// What a page shows besides its data: a notice after a change (`?notice=`), or the problem
/// a form ran into together with what was typed into it.
#[derive(Default)]
pub struct Echo {
    pub notice: Option<&'static str>,
    pub problem: Option<Problem>,
    pub form: Form,
}

impl Echo {
    pub fn failed(e: &Error, form: Form) -> Echo {
        Echo { notice: None, problem: Some(Problem::of(e)), form }
    }

    /// The status the page answers with: the problem's, or 200.
    pub fn status(&self) -> StatusCode {
        self.problem.as_ref().and_then(|p| StatusCode::from_u16(p.status).ok()).unwrap_or(StatusCode::OK)
    }
}

/// `?notice=` after a redirect: only known notices are shown.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

impl NoticeQuery {
    pub fn echo(&self) -> Echo {
        let notice = match self.notice.as_deref() {
            Some("created") => Some("Created."),
            Some("saved") => Some("Saved."),
            Some("deleted") => Some("Deleted."),
            Some("released") => Some("Released: devices can get it now."),
            Some("assigned") => Some("Assigned: the sessions below are on their way."),
            Some("canceled") => Some("Canceled (a device already working on it is asked to cancel)."),
            Some("revoked") => Some("Revoked: it stops working at once."),
            Some("password") => Some("The password is set."),
            _ => None,
        };
        Echo { notice, ..Echo::default() }
    }
}

/// An error page (the problem in words), for a request that has no page of its own to show it on.
#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    chrome: Chrome,
    problem: Problem,
}

/// A failed request, shown as a page with the error in words; the stable code is in the
/// `X-Devicehub-Error` header too.
#[derive(Debug)]
pub struct UiError {
    signed: Option<Box<Signed>>,
    error: Error,
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let problem = Problem::of(&self.error);
        let chrome = self.signed.as_ref().map_or_else(Chrome::anonymous, |s| Chrome::new(s, ""));
        let echo = Echo { notice: None, problem: Some(problem.clone()), form: Form::default() };
        render_echo(&echo, &ErrorPage { chrome, problem })
    }
}

/// `result.or_page(&signed)?`: an error becomes an error page.
pub trait OrPage<T> {
    fn or_page(self, s: &Signed) -> Result<T, UiError>;
}

impl<T> OrPage<T> for Result<T, Error> {
    fn or_page(self, s: &Signed) -> Result<T, UiError> {
        self.map_err(|error| UiError { signed: Some(Box::new(s.clone())), error })
    }
}

/// After a refused change, the page with the problem on it; and when the caller may not even
/// see that page, the problem alone (with the change's own answer, not the page's).
pub trait OrProblem {
    fn or_problem(self, e: Error, s: &Signed) -> Page;
}

impl OrProblem for Page {
    fn or_problem(self, error: Error, s: &Signed) -> Page {
        self.map_err(|_| UiError { signed: Some(Box::new(s.clone())), error })
    }
}

impl From<Error> for UiError {
    fn from(error: Error) -> UiError {
        UiError { signed: None, error }
    }
}

pub type Page = Result<HttpResponse, UiError>;

/// Renders a template with a status.
pub fn render<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    match page.render() {
        Ok(body) => {
            HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8")).body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Renders a page with an [`Echo`]'s status; a problem's stable code also goes into the
/// `X-Devicehub-Error` header (for scripts and tests).
pub fn render_echo<T: Template>(echo: &Echo, page: &T) -> HttpResponse {
    let mut r = render(echo.status(), page);
    if let Some(p) = &echo.problem
        && let Ok(v) = header::HeaderValue::from_str(p.code)
    {
        r.headers_mut().insert(header::HeaderName::from_static("x-devicehub-error"), v);
    }
    r
}

/// After a change: to the page that shows it (POST → redirect → GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_owned())).finish()
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let e = Error::NotFound(format!("no page at {}", req.path()));
    UiError::from(e).error_response()
}

// ---- helpers shared by the pages ------------------------------------------------------

/// Names for ids: lists show handles, not UUIDs.
#[derive(Default)]
pub struct Names {
    pub products: Vec<cat::HandleView>,
    pub models: Vec<cat::HandleView>,
    pub channels: Vec<cat::HandleView>,
    map: HashMap<String, String>,
}

impl Names {
    /// The products, models and channels the actor sees (the first thousand of each).
    pub async fn load(hub: &Hub, actor: &Actor) -> Result<Names, Error> {
        let many = ListParams { limit: Some(1000), offset: None };
        let products = cat::list_products(hub, actor, many).await?.items;
        let query = || cat::ScopedQuery { product: None, list: many };
        let models = cat::list_scoped::<cat::Models>(hub, actor, query()).await?.items;
        let channels = cat::list_scoped::<cat::Channels>(hub, actor, query()).await?.items;
        let mut names = Names { products: Vec::new(), models, channels, map: HashMap::new() };
        names.products = products.into_iter().map(product_handle).collect();
        for h in names.products.iter().chain(&names.models).chain(&names.channels) {
            names.map.insert(h.id.clone(), h.tid.clone());
        }
        Ok(names)
    }

    /// The handle of an id (or the id itself, when unknown).
    pub fn of(&self, id: &str) -> String {
        self.map.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    pub fn of_opt(&self, id: &Option<String>) -> String {
        id.as_deref().map_or_else(|| "—".to_owned(), |i| self.of(i))
    }
}

fn product_handle(p: cat::ProductView) -> cat::HandleView {
    cat::HandleView {
        id: p.id,
        tid: p.tid,
        name: p.name,
        product: None,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// Whether the actor may change things in a product.
pub fn writes_in(actor: &Actor, product: &str) -> bool {
    product_scope(product).is_ok_and(|scope| actor.can(Action::Write, scope))
}

/// Whether the actor may change things in some product.
pub fn writes_somewhere(actor: &Actor) -> bool {
    actor.products_allowing(Action::Write).is_none_or(|p| !p.is_empty())
}

pub fn global(actor: &Actor, action: Action) -> bool {
    actor.can(action, Scope::Global)
}

/// A query or form value, trimmed; `None` when blank.
pub fn blank(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A time as people read it (UTC).
pub fn when(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn when_opt(t: &Option<chrono::NaiveDateTime>) -> String {
    t.as_ref().map_or_else(|| "never".to_owned(), when)
}

/// The page a signed-in handler renders; `SignedIn` is re-exported for the page modules.
pub type Me = SignedIn;
