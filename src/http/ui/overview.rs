//! Signing in and out, and the overview: installed versions per product as a bar chart
//! (SVG drawn here, no chart library), sessions by state, recent failures, quiet devices.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::fleet::{SessionRow, session_rows};
use super::{Chrome, Echo, Form, HubData, Me, Names, OrPage, Page, Posted, Problem, render, render_echo, when_opt};
use crate::http::web_session::{self, COOKIE};
use crate::service::devices::DeviceView;
use crate::service::{Hub, overview, web_sessions};

/// The cookie that ties the sign-in form to the browser that loaded it (the form's CSRF
/// token before there is a session).
const PRE_COOKIE: &str = "dh_sign_in";

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    out: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    username: String,
    signed_out: bool,
}

/// Only pages of the UI itself are places to come back to.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ui".to_owned(),
    }
}

fn sign_in_form(hub: &Hub, status: StatusCode, page: SignInPage) -> HttpResponse {
    let mut r = render(status, &page);
    if let Ok(v) = header::HeaderValue::from_str(&web_session::set_cookie(hub, PRE_COOKIE, &page.csrf, Some(3600))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn sign_in_page(hub: HubData, q: web::Query<SignInQuery>) -> HttpResponse {
    let page = SignInPage {
        chrome: Chrome::anonymous(),
        csrf: crate::service::auth::generate_token(),
        next: safe_next(q.next.as_deref()),
        username: String::new(),
        signed_out: q.out.is_some(),
    };
    sign_in_form(&hub, StatusCode::OK, page)
}

/// The client's address, for counting failed sign-ins.
fn client_address(hub: &Hub, req: &HttpRequest) -> Option<String> {
    if hub.settings.ui_trust_forwarded_for
        && let Some(forwarded) = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok())
    {
        // the proxy appends the address it saw last
        if let Some(last) = forwarded.rsplit(',').map(str::trim).find(|a| !a.is_empty()) {
            return Some(last.to_owned());
        }
    }
    req.peer_addr().map(|a| a.ip().to_string())
}

pub async fn sign_in(hub: HubData, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return super::UiError::from(e).into_response(),
    };
    let mut page = SignInPage {
        chrome: Chrome::anonymous(),
        csrf: crate::service::auth::generate_token(),
        next: safe_next(form.opt("next").as_deref()),
        username: form.text("username"),
        signed_out: false,
    };
    let tied = web_session::cookie(&req, PRE_COOKIE)
        .is_some_and(|c| web_sessions::csrf_matches(&c, form.get(super::forms::CSRF_FIELD)));
    let result = if tied {
        let input = web_sessions::SignIn {
            username: form.text("username"),
            password: form.get("password").to_owned(),
            token: form.text("token"),
            address: client_address(&hub, &req),
        };
        web_sessions::sign_in(&hub, input).await
    } else {
        Err(web_session::csrf_refused())
    };
    match result {
        Ok(opened) => {
            let session = web_session::set_cookie(&hub, COOKIE, &opened.secret, None);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, page.next))
                .append_header((header::SET_COOKIE, session))
                .append_header((header::SET_COOKIE, web_session::set_cookie(&hub, PRE_COOKIE, "", Some(0))))
                .finish()
        }
        Err(e) => {
            let problem = Problem::of(&e);
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNAUTHORIZED);
            page.chrome.problem = Some(problem);
            let mut r = sign_in_form(&hub, status, page);
            if let Ok(v) = header::HeaderValue::from_str(e.code()) {
                r.headers_mut().insert(header::HeaderName::from_static("x-devicehub-error"), v);
            }
            r
        }
    }
}

pub async fn sign_out(hub: HubData, req: HttpRequest, _p: Posted) -> Page {
    if let Some(secret) = web_session::cookie(&req, COOKIE) {
        web_sessions::sign_out(&hub, secret).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/sign-in?out=1"))
        .insert_header((header::SET_COOKIE, web_session::set_cookie(&hub, COOKIE, "", Some(0))))
        .finish())
}

// ---- the overview ----------------------------------------------------------------------

/// One product's installed versions as horizontal bars.
pub struct Chart {
    pub tid: String,
    pub name: String,
    pub total: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub label: String,
    pub count: i64,
    pub y: i64,
    pub width: i64,
    pub text_y: i64,
    pub count_x: i64,
}

/// Where the bars start, how long the longest is, and how tall a row is (SVG units).
const LABEL_WIDTH: i64 = 150;
const BAR_SPACE: i64 = 380;
const ROW: i64 = 28;

fn chart(p: &overview::ProductVersions) -> Chart {
    let max = p.versions.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let bars = p
        .versions
        .iter()
        .enumerate()
        .map(|(i, (version, count))| {
            let i = i64::try_from(i).unwrap_or(0);
            let width = (count * BAR_SPACE / max).max(2);
            Bar {
                label: version.clone().unwrap_or_else(|| "unknown".into()),
                count: *count,
                y: i * ROW + 4,
                width,
                text_y: i * ROW + 20,
                count_x: LABEL_WIDTH + width + 8,
            }
        })
        .collect::<Vec<_>>();
    let rows = i64::try_from(bars.len()).unwrap_or(0).max(1);
    Chart {
        tid: p.tid.clone(),
        name: p.name.clone(),
        total: p.versions.iter().map(|(_, n)| n).sum(),
        height: rows * ROW + 8,
        bars,
    }
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    charts: Vec<Chart>,
    label_width: i64,
    sessions_by_state: Vec<(&'static str, i64)>,
    live_sessions: i64,
    failures: Vec<SessionRow>,
    quiet: Vec<(DeviceView, String, String)>,
    quiet_total: i64,
    quiet_hours: i64,
}

pub async fn overview(hub: HubData, me: Me) -> Page {
    let s = &me.0;
    let summary = overview::summary(&hub, &s.actor).await.or_page(s)?;
    let names = Names::load(&hub, &s.actor).await.or_page(s)?;
    let failures = session_rows(&hub, &s.actor, &names, summary.recent_failures).await.or_page(s)?;
    let quiet = summary
        .quiet_devices
        .into_iter()
        .map(|d| {
            let product = names.of(&d.product);
            let seen = when_opt(&d.last_seen);
            (d, product, seen)
        })
        .collect();
    let page = OverviewPage {
        chrome: Chrome::new(s, "overview"),
        charts: summary.products.iter().map(chart).collect(),
        label_width: LABEL_WIDTH,
        live_sessions: summary.sessions_by_state.iter().map(|(_, n)| n).sum(),
        sessions_by_state: summary.sessions_by_state,
        failures,
        quiet,
        quiet_total: summary.quiet_total,
        quiet_hours: overview::QUIET_AFTER_HOURS,
    };
    Ok(render_echo(&Echo::default(), &page))
}

impl super::UiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_next_stays_in_the_ui() {
        let p = overview::ProductVersions {
            product_id: "p".into(),
            tid: "P1".into(),
            name: "one".into(),
            versions: vec![(Some("2.0.0".into()), 10), (None, 5), (Some("1.0.0".into()), 0)],
        };
        let c = chart(&p);
        assert_eq!(c.total, 15);
        assert_eq!(c.bars[0].width, BAR_SPACE);
        assert_eq!(c.bars[1].width, BAR_SPACE / 2);
        assert_eq!(c.bars[1].label, "unknown");
        assert_eq!(c.bars[2].width, 2, "an empty bar still shows");
        assert_eq!(safe_next(Some("/ui/devices?x=1")), "/ui/devices?x=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }
}
