//! Devices (search, filters, the twin, the target token, the update history with each
//! session's events) and sessions (a live list with filters, one session, cancel).

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::web;
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::forms::key_values;
use super::{
    Chrome, Echo, HubData, Me, Names, NoticeQuery, OrPage, OrProblem, Page, Posted, blank, render_echo, see_other,
    when, writes_in, writes_somewhere,
};
use crate::error::{Error, Result};
use crate::http::routes::Route;
use crate::service::devices::{self as devices_svc, DeviceQuery, DeviceUpdate, DeviceView, NewDevice};
use crate::service::firmware::{self as firmware_svc, FirmwareQuery};
use crate::service::session::request::{self as sessions_svc, SessionQuery};
use crate::service::session::views::{EventView, HistoryEntry};
use crate::service::{Actor, Hub, ListParams};

pub(super) fn routes() -> Vec<Route> {
    let r = super::route;
    vec![
        r(Method::GET, "/devices", |r| r.to(devices)),
        r(Method::POST, "/devices", |r| r.to(create_device)),
        r(Method::GET, "/devices/{id}", |r| r.to(device)),
        r(Method::POST, "/devices/{id}", |r| r.to(update_device)),
        r(Method::POST, "/devices/{id}/delete", |r| r.to(delete_device)),
        r(Method::POST, "/devices/{id}/target-token", |r| r.to(rotate_token)),
        r(Method::GET, "/sessions", |r| r.to(sessions)),
        r(Method::GET, "/sessions/rows", |r| r.to(session_rows_fragment)),
        r(Method::GET, "/sessions/{id}", |r| r.to(session)),
        r(Method::POST, "/sessions/{id}/cancel", |r| r.to(cancel_session)),
    ]
}

// ---- session rows, shared by the lists ---------------------------------------------------

/// A session as a row of a list.
pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub state: String,
    pub expired: bool,
    pub device: Option<String>,
    pub device_label: String,
    pub target_id: Option<String>,
    pub target: String,
    pub action: String,
    pub reason: String,
    pub creator: String,
}

/// What the rows name, by id: firmware versions and device identities (only those named).
async fn labels(hub: &Hub, actor: &Actor, names: &Names, entries: &[HistoryEntry]) -> Result<HashMap<String, String>> {
    let wanted = |pick: fn(&HistoryEntry) -> Option<&String>| -> Option<Vec<String>> {
        let mut ids: Vec<String> = entries.iter().filter_map(pick).cloned().collect();
        ids.sort();
        ids.dedup();
        Some(ids)
    };
    let list = ListParams { limit: Some(1000), offset: None };
    let mut map = HashMap::new();
    let query = FirmwareQuery { ids: wanted(|e| e.session.target_firmware.as_ref()), list, ..Default::default() };
    for f in firmware_svc::list(hub, actor, query).await?.items {
        map.insert(f.id.clone(), format!("{} {}", names.of(&f.model), f.version));
    }
    let query = DeviceQuery { ids: wanted(|e| e.session.device.as_ref()), list, ..Default::default() };
    for d in devices_svc::list(hub, actor, query).await?.items {
        map.insert(d.id.clone(), d.device_id);
    }
    Ok(map)
}

pub async fn session_rows(
    hub: &Hub,
    actor: &Actor,
    names: &Names,
    entries: Vec<HistoryEntry>,
) -> Result<Vec<SessionRow>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let labels = labels(hub, actor, names, &entries).await?;
    let label = |id: &Option<String>| {
        id.as_ref().map_or_else(|| "—".to_owned(), |i| labels.get(i).cloned().unwrap_or_else(|| short(i)))
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let s = e.session;
            let reason = s.payload.as_ref().and_then(|p| p["reason"].as_str()).unwrap_or_default().to_owned();
            let action = match &s.action {
                Some(a) if a.cancel_requested => format!("{} (cancel asked)", a.action_type),
                Some(a) => a.action_type.clone(),
                None => "requested".to_owned(),
            };
            SessionRow {
                device_label: label(&s.device),
                target: label(&s.target_firmware),
                id: s.id,
                created: when(&s.create_time),
                state: s.state,
                expired: e.expired,
                device: s.device,
                target_id: s.target_firmware,
                action,
                reason,
                creator: s.creator,
            }
        })
        .collect())
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

// ---- devices -----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DeviceFilter {
    search: Option<String>,
    product: Option<String>,
    model: Option<String>,
    channel: Option<String>,
    offset: Option<i64>,
    notice: Option<String>,
}

const PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "ui/devices.html")]
struct DevicesPage {
    chrome: Chrome,
    names: Names,
    rows: Vec<DeviceView>,
    total: i64,
    filter: DeviceFilter,
    form: super::Form,
    can_create: bool,
    next: Option<String>,
    previous: Option<String>,
}

/// `?offset=` links that keep the other filters.
fn paging(base: &str, pairs: &[(&str, Option<String>)], offset: i64, total: i64) -> (Option<String>, Option<String>) {
    let link = |o: i64| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.append_pair("offset", &o.to_string());
        format!("{base}?{}", q.finish())
    };
    let next = (offset + PAGE < total).then(|| link(offset + PAGE));
    let previous = (offset > 0).then(|| link((offset - PAGE).max(0)));
    (next, previous)
}

async fn devices_page(hub: &Hub, me: &Me, filter: DeviceFilter, echo: Echo) -> Page {
    let s = &me.0;
    let offset = filter.offset.unwrap_or(0);
    let query = DeviceQuery {
        search: blank(&filter.search),
        product: blank(&filter.product),
        model: blank(&filter.model),
        channel: blank(&filter.channel),
        list: ListParams { limit: Some(PAGE), offset: Some(offset) },
        ..Default::default()
    };
    let listing = devices_svc::list(hub, &s.actor, query).await.or_page(s)?;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let pairs = [
        ("search", blank(&filter.search)),
        ("product", blank(&filter.product)),
        ("model", blank(&filter.model)),
        ("channel", blank(&filter.channel)),
    ];
    let (next, previous) = paging("/ui/devices", &pairs, offset, listing.total);
    let page = DevicesPage {
        chrome: Chrome::new(s, "devices").with(&echo),
        names,
        total: listing.total,
        rows: listing.items,
        filter,
        form: echo.form.clone(),
        can_create: writes_somewhere(&s.actor),
        next,
        previous,
    };
    Ok(render_echo(&echo, &page))
}

async fn devices(hub: HubData, me: Me, filter: web::Query<DeviceFilter>) -> Page {
    let filter = filter.into_inner();
    let echo = NoticeQuery { notice: filter.notice.clone() }.echo();
    devices_page(&hub, &me, filter, echo).await
}

async fn create_device(hub: HubData, p: Posted) -> Page {
    let me = p.me();
    let f = &p.form;
    let input = key_values("attributes", f.get("attributes")).map(|attributes| NewDevice {
        device_id: f.text("device_id"),
        product: f.opt("product"),
        model: f.opt("model"),
        channel: f.opt("channel"),
        name: f.opt("name"),
        attributes,
        installed_version: f.opt("installed_version"),
        age_recipient: f.opt("age_recipient"),
    });
    let created = async { devices_svc::create(&hub, &p.signed.actor, input?).await }.await;
    match created {
        // the target token is shown on this answer only
        Ok(view) => device_page(&hub, &me, view.id.clone(), Some(view), Echo::default()).await,
        Err(e) => {
            devices_page(&hub, &me, DeviceFilter::default(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed)
        }
    }
}

#[derive(Template)]
#[template(path = "ui/device.html")]
struct DevicePage {
    chrome: Chrome,
    d: DeviceView,
    product: String,
    model: String,
    channel: String,
    channels: Vec<crate::service::catalog::HandleView>,
    attributes: Vec<(String, String)>,
    seen: String,
    history: Vec<(SessionRow, Vec<EventView>)>,
    can_write: bool,
    new_token: Option<String>,
}

/// The device page; `made`: the device as just created or rotated, with its new token.
async fn device_page(hub: &Hub, me: &Me, id: String, made: Option<DeviceView>, echo: Echo) -> Page {
    let s = &me.0;
    let (d, new_token) = match made {
        Some(mut d) => {
            let token = d.target_token.take();
            (d, token)
        }
        None => (devices_svc::get(hub, &s.actor, id.clone()).await.or_page(s)?, None),
    };
    let history =
        sessions_svc::device_history(hub, &s.actor, d.id.clone(), ListParams { limit: Some(20), offset: None })
            .await
            .or_page(s)?;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let mut rows = Vec::new();
    for row in session_rows(hub, &s.actor, &names, history.items).await.or_page(s)? {
        let events = sessions_svc::events(hub, &s.actor, row.id.clone()).await.or_page(s)?;
        rows.push((row, events));
    }
    let attributes = match &d.attributes {
        Value::Object(m) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        _ => Vec::new(),
    };
    let page = DevicePage {
        chrome: Chrome::new(s, "devices").with(&echo),
        product: names.of(&d.product),
        model: names.of_opt(&d.model),
        channel: names.of_opt(&d.channel),
        channels: names.channels.iter().filter(|c| c.product.as_deref() == Some(d.product.as_str())).cloned().collect(),
        attributes,
        seen: super::when_opt(&d.last_seen),
        history: rows,
        can_write: writes_in(&s.actor, &d.product),
        new_token,
        d,
    };
    Ok(render_echo(&echo, &page))
}

async fn device(hub: HubData, me: Me, id: web::Path<String>, q: web::Query<NoticeQuery>) -> Page {
    device_page(&hub, &me, id.into_inner(), None, q.echo()).await
}

/// A field the form sent: blank clears it, absent leaves it.
fn clearable(f: &super::Form, name: &str) -> Option<Option<String>> {
    f.has(name).then(|| f.opt(name))
}

async fn update_device(hub: HubData, p: Posted, id: web::Path<String>) -> Page {
    let f = &p.form;
    let attributes = f.has("attributes").then(|| key_values("attributes", f.get("attributes"))).transpose();
    let input = attributes.map(|attributes| DeviceUpdate {
        name: clearable(f, "name"),
        model: clearable(f, "model"),
        channel: clearable(f, "channel"),
        attributes,
        dmf_reply_to: None,
        age_recipient: clearable(f, "age_recipient"),
    });
    let id = id.into_inner();
    let result = async { devices_svc::update(&hub, &p.signed.actor, id.clone(), input?).await }.await;
    match result {
        Ok(d) => Ok(see_other(&format!("/ui/devices/{}?notice=saved", d.id))),
        Err(e) => device_page(&hub, &p.me(), id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_device(hub: HubData, p: Posted, id: web::Path<String>) -> Page {
    let id = id.into_inner();
    match devices_svc::delete(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other("/ui/devices?notice=deleted")),
        Err(e) => device_page(&hub, &p.me(), id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn rotate_token(hub: HubData, p: Posted, id: web::Path<String>) -> Page {
    let me = p.me();
    let id = id.into_inner();
    match devices_svc::rotate_target_token(&hub, &p.signed.actor, id.clone()).await {
        Ok(d) => device_page(&hub, &me, id, Some(d), Echo::default()).await,
        Err(e) => device_page(&hub, &me, id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

// ---- sessions ----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct SessionFilter {
    state: Option<String>,
    product: Option<String>,
    model: Option<String>,
    firmware: Option<String>,
    expired: Option<String>,
    offset: Option<i64>,
    notice: Option<String>,
}

impl SessionFilter {
    fn query(&self) -> SessionQuery {
        SessionQuery {
            state: blank(&self.state),
            product: blank(&self.product),
            model: blank(&self.model),
            firmware: blank(&self.firmware),
            expired: blank(&self.expired),
            list: ListParams { limit: Some(PAGE), offset: self.offset },
            ..Default::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("state", blank(&self.state)),
            ("product", blank(&self.product)),
            ("model", blank(&self.model)),
            ("firmware", blank(&self.firmware)),
            ("expired", blank(&self.expired)),
        ]
    }

    /// The query string of the same filters (what the live refresh asks for).
    fn query_string(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs() {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        if let Some(o) = self.offset {
            q.append_pair("offset", &o.to_string());
        }
        q.finish()
    }
}

#[derive(Template)]
#[template(path = "ui/sessions.html")]
struct SessionsPage {
    chrome: Chrome,
    names: Names,
    rows: Vec<SessionRow>,
    total: i64,
    filter: SessionFilter,
    refresh: String,
    states: &'static [crate::domain::session::State],
    next: Option<String>,
    previous: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/session_rows.html")]
pub struct SessionRows {
    pub rows: Vec<SessionRow>,
}

async fn sessions(hub: HubData, me: Me, filter: web::Query<SessionFilter>) -> Page {
    let s = &me.0;
    let filter = filter.into_inner();
    let echo = NoticeQuery { notice: filter.notice.clone() }.echo();
    let listing = sessions_svc::list(&hub, &s.actor, filter.query()).await.or_page(s)?;
    let names = Names::load(&hub, &s.actor).await.or_page(s)?;
    let total = listing.total;
    let rows = session_rows(&hub, &s.actor, &names, listing.items).await.or_page(s)?;
    let (next, previous) = paging("/ui/sessions", &filter.pairs(), filter.offset.unwrap_or(0), total);
    let page = SessionsPage {
        chrome: Chrome::new(s, "sessions").with(&echo),
        names,
        rows,
        total,
        refresh: format!("/ui/sessions/rows?{}", filter.query_string()),
        filter,
        states: &crate::domain::session::State::ALL,
        next,
        previous,
    };
    Ok(render_echo(&echo, &page))
}

/// The rows alone, for the page's live refresh.
async fn session_rows_fragment(hub: HubData, me: Me, filter: web::Query<SessionFilter>) -> Page {
    let s = &me.0;
    let listing = sessions_svc::list(&hub, &s.actor, filter.query()).await.or_page(s)?;
    let names = Names::load(&hub, &s.actor).await.or_page(s)?;
    let rows = session_rows(&hub, &s.actor, &names, listing.items).await.or_page(s)?;
    Ok(super::render(actix_web::http::StatusCode::OK, &SessionRows { rows }))
}

#[derive(Template)]
#[template(path = "ui/session.html")]
struct SessionPage {
    chrome: Chrome,
    row: SessionRow,
    entry_finished: bool,
    expires: String,
    events: Vec<EventView>,
    download: Option<String>,
    can_cancel: bool,
}

async fn session_page(hub: &Hub, me: &Me, id: String, echo: Echo) -> Page {
    let s = &me.0;
    let entry = sessions_svc::entry(hub, &s.actor, id.clone()).await.or_page(s)?;
    let events = sessions_svc::events(hub, &s.actor, id).await.or_page(s)?;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let finished = entry.session.finished || entry.expired;
    let expires = super::when_opt(&entry.session.expiration_time);
    let download = entry.session.payload.as_ref().and_then(|p| p["download_link"].as_str()).map(str::to_owned);
    let product = session_product(hub, &s.actor, &entry).await;
    let can_cancel = !finished && product.is_some_and(|p| writes_in(&s.actor, &p));
    let row = session_rows(hub, &s.actor, &names, vec![entry]).await.or_page(s)?.into_iter().next();
    let Some(row) = row else { return Err(Error::not_found("session")).or_page(s) };
    let page = SessionPage {
        chrome: Chrome::new(s, "sessions").with(&echo),
        row,
        entry_finished: finished,
        expires,
        events,
        download,
        can_cancel,
    };
    Ok(render_echo(&echo, &page))
}

/// The product of a session (through its target firmware's model), for showing the cancel
/// button only to those who may cancel; the service decides either way.
async fn session_product(hub: &Hub, actor: &Actor, entry: &HistoryEntry) -> Option<String> {
    let fw = entry.session.target_firmware.clone()?;
    let f = firmware_svc::get(hub, actor, fw).await.ok()?;
    let model = crate::service::catalog::get::<crate::service::catalog::Models>(hub, actor, f.model).await.ok()?;
    model.product
}

async fn session(hub: HubData, me: Me, id: web::Path<String>, q: web::Query<NoticeQuery>) -> Page {
    session_page(&hub, &me, id.into_inner(), q.echo()).await
}

async fn cancel_session(hub: HubData, p: Posted, id: web::Path<String>) -> Page {
    let id = id.into_inner();
    match crate::service::assignments::cancel(&hub, &p.signed.actor, id.clone()).await {
        Ok(_) => Ok(see_other(&format!("/ui/sessions/{id}?notice=canceled"))),
        Err(e) => session_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}
