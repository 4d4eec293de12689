//! Firmware: the list with filters, creation, the image upload (the browser `PUT`s the file
//! body here and it streams into the object store, as the API's upload does), the release,
//! channel membership, assignments and their progress.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::fleet::{SessionRow, session_rows};
use super::forms::key_values;
use super::{
    Chrome, Echo, Form, HubData, Me, Names, NoticeQuery, OrPage, OrProblem, Page, Posted, blank, render_echo,
    see_other, when, writes_in, writes_somewhere,
};
use crate::error::{Error, Result};
use crate::http::routes::Route;
use crate::http::web_session::{check_csrf, csrf_header};
use crate::service::assignments::{self, AssignRequest, Window};
use crate::service::catalog::{self as cat, ProcedureQuery, ProcedureView};
use crate::service::firmware::{self as svc, FirmwareQuery, FirmwareUpdate, FirmwareView, NewFirmware, UploadOptions};
use crate::service::session::request::{self as sessions_svc, SessionQuery};
use crate::service::{Hub, ListParams, overview};

pub(super) fn routes() -> Vec<Route> {
    let r = super::route;
    vec![
        r(Method::GET, "/firmware", |r| r.to(list)),
        r(Method::POST, "/firmware", |r| r.to(create)),
        r(Method::GET, "/firmware/{id}", |r| r.to(firmware)),
        r(Method::POST, "/firmware/{id}", |r| r.to(update)),
        r(Method::POST, "/firmware/{id}/delete", |r| r.to(delete)),
        r(Method::PUT, "/firmware/{id}/image", |r| r.to(upload_image)),
        r(Method::POST, "/firmware/{id}/release", |r| r.to(release)),
        r(Method::POST, "/firmware/{id}/assign", |r| r.to(assign)),
    ]
}

type Id = web::Path<String>;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    model: Option<String>,
    channel: Option<String>,
    state: Option<String>,
    version: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/firmware_list.html")]
struct ListPage {
    chrome: Chrome,
    names: Names,
    rows: Vec<FirmwareView>,
    total: i64,
    filter: Filter,
    form: Form,
    can_create: bool,
}

impl ListPage {
    fn channel_tids(&self, f: &FirmwareView) -> String {
        let tids: Vec<String> = f.channels.iter().map(|c| self.names.of(c)).collect();
        if tids.is_empty() { "—".into() } else { tids.join(", ") }
    }
}

async fn list_page(hub: &Hub, me: &Me, filter: Filter, echo: Echo) -> Page {
    let s = &me.0;
    let query = FirmwareQuery {
        model: blank(&filter.model),
        channel: blank(&filter.channel),
        state: blank(&filter.state),
        version: blank(&filter.version),
        list: ListParams { limit: Some(200), offset: None },
        ..Default::default()
    };
    let listing = svc::list(hub, &s.actor, query).await.or_page(s)?;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let page = ListPage {
        chrome: Chrome::new(s, "firmware").with(&echo),
        names,
        total: listing.total,
        rows: listing.items,
        filter,
        form: echo.form.clone(),
        can_create: writes_somewhere(&s.actor),
    };
    Ok(render_echo(&echo, &page))
}

async fn list(hub: HubData, me: Me, filter: web::Query<Filter>) -> Page {
    let filter = filter.into_inner();
    let echo = NoticeQuery { notice: filter.notice.clone() }.echo();
    list_page(&hub, &me, filter, echo).await
}

async fn create(hub: HubData, p: Posted) -> Page {
    let f = &p.form;
    let input = NewFirmware { model: f.text("model"), version: f.text("version"), channels: f.all("channels") };
    match svc::create(&hub, &p.signed.actor, input).await {
        Ok(v) => Ok(see_other(&format!("/ui/firmware/{}?notice=created", v.id))),
        Err(e) => list_page(&hub, &p.me(), Filter::default(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

#[derive(Template)]
#[template(path = "ui/firmware.html")]
struct FirmwarePage {
    chrome: Chrome,
    f: FirmwareView,
    model: String,
    product: String,
    channels: Vec<cat::HandleView>,
    procedures: Vec<ProcedureView>,
    progress: Vec<(&'static str, i64)>,
    sessions: Vec<SessionRow>,
    refresh: String,
    form: Form,
    can_write: bool,
    max_image_size: u64,
}

impl FirmwarePage {
    fn in_channel(&self, id: &str) -> bool {
        self.f.channels.iter().any(|c| c == id)
    }
    fn released(&self) -> bool {
        self.f.state == "released"
    }
}

async fn firmware_page(hub: &Hub, me: &Me, id: String, echo: Echo) -> Page {
    let s = &me.0;
    let f = svc::get(hub, &s.actor, id).await.or_page(s)?;
    let model = cat::get::<cat::Models>(hub, &s.actor, f.model.clone()).await.or_page(s)?;
    let product = model.product.clone().unwrap_or_default();
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let many = ListParams { limit: Some(1000), offset: None };
    let procedures = cat::list_procedures(hub, &s.actor, ProcedureQuery { delivery_method: None, list: many })
        .await
        .or_page(s)?
        .items;
    let progress = overview::firmware_progress(hub, &s.actor, f.id.clone()).await.or_page(s)?;
    let query = SessionQuery {
        firmware: Some(f.id.clone()),
        expired: Some("all".into()),
        list: ListParams { limit: Some(50), offset: None },
        ..Default::default()
    };
    let listing = sessions_svc::list(hub, &s.actor, query).await.or_page(s)?;
    let sessions = session_rows(hub, &s.actor, &names, listing.items).await.or_page(s)?;
    let page = FirmwarePage {
        chrome: Chrome::new(s, "firmware").with(&echo),
        model: model.tid,
        product: names.of(&product),
        channels: names.channels.iter().filter(|c| c.product.as_deref() == Some(product.as_str())).cloned().collect(),
        procedures,
        progress,
        sessions,
        refresh: format!("/ui/sessions/rows?firmware={}&expired=all", f.id),
        form: echo.form.clone(),
        can_write: writes_in(&s.actor, &product),
        max_image_size: hub.settings.max_image_size,
        f,
    };
    Ok(render_echo(&echo, &page))
}

async fn firmware(hub: HubData, me: Me, id: Id, q: web::Query<NoticeQuery>) -> Page {
    firmware_page(&hub, &me, id.into_inner(), q.echo()).await
}

/// Channel membership (the form says it sent the channels, so none checked means none) and,
/// for a draft, the version.
async fn update(hub: HubData, p: Posted, id: Id) -> Page {
    let f = &p.form;
    let channels = (f.has("channels") || f.has("channels_sent")).then(|| f.all("channels"));
    let input = FirmwareUpdate { version: f.opt("version"), channels };
    let id = id.into_inner();
    match svc::update(&hub, &p.signed.actor, id.clone(), input).await {
        Ok(v) => Ok(see_other(&format!("/ui/firmware/{}?notice=saved", v.id))),
        Err(e) => firmware_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    match svc::delete(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other("/ui/firmware?notice=deleted")),
        Err(e) => firmware_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn release(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    match svc::release(&hub, &p.signed.actor, id.clone()).await {
        Ok(v) => Ok(see_other(&format!("/ui/firmware/{}?notice=released", v.id))),
        Err(e) => firmware_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

/// The page's script sends the file body as it reads it (`PUT`, upload progress shown), with
/// the CSRF token in a header; it streams into the object store like the API's upload, and
/// the answer is the API's JSON.
async fn upload_image(
    hub: HubData,
    me: Me,
    id: Id,
    req: HttpRequest,
    q: web::Query<UploadOptions>,
    body: web::Payload,
) -> Result<HttpResponse> {
    check_csrf(&me.0, csrf_header(&req))?;
    let length =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let view = svc::upload_image(&hub, &me.0.actor, id.into_inner(), q.into_inner(), length, body).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Device ids or identities, one per line or separated by commas or spaces.
fn device_list(f: &Form) -> Vec<String> {
    f.all("devices")
        .iter()
        .flat_map(|v| v.split([',', ' ', '\n', '\r', '\t']).map(str::to_owned).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect()
}

/// A time from a `datetime-local` field, read as UTC, in RFC 3339.
fn utc_time(raw: &str) -> String {
    let raw = raw.trim();
    if raw.ends_with('Z') || raw.contains('+') {
        return raw.to_owned();
    }
    match raw.len() {
        16 => format!("{raw}:00Z"),
        _ => format!("{raw}Z"),
    }
}

fn assign_request(f: &Form) -> Result<AssignRequest> {
    let attributes = f.opt("attributes").map(|text| key_values("attributes", &text)).transpose()?;
    let maintenance_window = match (f.opt("window_start"), f.opt("window_end")) {
        (None, None) => None,
        (Some(start), Some(end)) => Some(Window { start: utc_time(&start), end: utc_time(&end) }),
        _ => return Err(Error::invalid("maintenance_window: give both its start and its end, or neither")),
    };
    Ok(AssignRequest {
        devices: device_list(f),
        channel: f.opt("channel"),
        attributes,
        delivery_procedure: f.opt("delivery_procedure"),
        action_type: f.opt("action_type"),
        maintenance_window,
    })
}

async fn assign(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    let result = async { assignments::assign(&hub, &p.signed.actor, id.clone(), assign_request(&p.form)?).await }.await;
    match result {
        Ok(assignments::Assigned::Done(_)) => Ok(see_other(&format!("/ui/firmware/{id}?notice=assigned#progress"))),
        // a large assignment runs as a job: its sessions appear as it goes
        Ok(assignments::Assigned::Started(_)) => Ok(see_other(&format!("/ui/firmware/{id}?notice=assigning#progress"))),
        Err(e) => firmware_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

/// Sizes as people read them.
pub fn size(bytes: &Option<i64>) -> String {
    match bytes {
        None => "—".into(),
        Some(b) if *b < 1024 => format!("{b} bytes"),
        Some(b) if *b < 1024 * 1024 => format!("{:.1} KiB ({b} bytes)", *b as f64 / 1024.0),
        Some(b) => format!("{:.1} MiB ({b} bytes)", *b as f64 / (1024.0 * 1024.0)),
    }
}

/// For the template: when, or "not yet".
pub fn released_at(f: &FirmwareView) -> String {
    f.released_at.as_ref().map_or_else(|| "not yet".into(), when)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_become_the_api_request() {
        let f = Form::parse(
            b"devices=a%2C+b&devices=c&window_start=2030-01-01T10%3A00&window_end=2030-01-01T12%3A00&attributes=hw%3D2",
        )
        .unwrap_or_default();
        let r = assign_request(&f).expect("valid");
        assert_eq!(r.devices, ["a", "b", "c"]);
        let w = r.maintenance_window.expect("window");
        assert_eq!((w.start.as_str(), w.end.as_str()), ("2030-01-01T10:00:00Z", "2030-01-01T12:00:00Z"));
        assert_eq!(r.attributes.expect("attributes")["hw"], "2");
        let half = Form::parse(b"devices=a&window_start=2030-01-01T10%3A00").unwrap_or_default();
        assert!(assign_request(&half).is_err());
        assert_eq!(size(&Some(2048)), "2.0 KiB (2048 bytes)");
    }
}
