//! The admin web UI over HTTP: signing in and out, the cookie's flags, CSRF, the content
//! security policy, the rights (a viewer cannot change, a product-scoped user sees only their
//! product), failed sign-ins slowed down, the idle timeout, and passwords from the CLI.
//! The browser walkthrough is `browser.rs`; the rights of every UI route, role by role, are in
//! the matrix (`authz_matrix.rs`).

use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(
    sign_in_cookie_flags_and_sign_out,
    the_cookie_is_secure_behind_https,
    forms_need_the_csrf_token,
    pages_carry_a_strict_policy_and_no_inline_code,
    a_viewer_sees_and_cannot_change,
    a_product_user_sees_only_their_product,
    failed_sign_ins_are_slowed_down,
    idle_sessions_end,
    passwords_from_the_api_and_the_cli,
    forms_show_problems_in_words,
);

/// A browser signed in to the UI (cookies kept by hand: the test client has no cookie jar).
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: String,
    pub csrf: String,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub fn error_code(&self) -> &str {
        self.headers.get("x-devicehub-error").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `name=value` of a `Set-Cookie` header with this name.
fn set_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find(|c| c.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The value of the first `name="csrf" value="…"` (or the meta tag) in a page.
pub fn csrf_in(html: &str) -> String {
    for marker in ["name=\"csrf-token\" content=\"", "name=\"csrf\" value=\""] {
        if let Some(start) = html.find(marker) {
            let rest = &html[start + marker.len()..];
            return rest[..rest.find('"').unwrap()].to_owned();
        }
    }
    panic!("no CSRF token in the page:\n{html}")
}

pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Answer {
    let mut req = no_redirects().request(method, app.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    if let Some(f) = form {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(f).finish();
        req = req.header("Content-Type", "application/x-www-form-urlencoded").body(body);
    }
    let r = req.send().await.unwrap();
    Answer { status: r.status().as_u16(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

/// Loads the sign-in page and posts its form with these fields.
pub async fn sign_in_form(app: &TestApp, fields: &[(&str, &str)]) -> Answer {
    let page = send(app, Method::GET, "/ui/sign-in", None, None).await;
    assert_eq!(page.status, 200);
    let pre = cookie_value(set_cookie(&page.headers, "dh_sign_in").expect("the sign-in form sets its cookie"));
    let csrf = csrf_in(&page.body);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    send(app, Method::POST, "/ui/sign-in", Some(&pre), Some(&form)).await
}

impl<'a> Browser<'a> {
    /// Signs in with an API token (what automation users do).
    pub async fn with_token(app: &'a TestApp, token: &str) -> Browser<'a> {
        Browser::from_answer(app, sign_in_form(app, &[("token", token)]).await).await
    }

    pub async fn with_password(app: &'a TestApp, username: &str, password: &str) -> Browser<'a> {
        Browser::from_answer(app, sign_in_form(app, &[("username", username), ("password", password)]).await).await
    }

    async fn from_answer(app: &'a TestApp, signed: Answer) -> Browser<'a> {
        assert_eq!(signed.status, 303, "sign-in refused: {}", signed.body);
        let cookie = cookie_value(set_cookie(&signed.headers, "dh_session").expect("a session cookie"));
        let home = send(app, Method::GET, "/ui", Some(&cookie), None).await;
        assert_eq!(home.status, 200, "{}", home.body);
        let csrf = csrf_in(&home.body);
        Browser { app, cookie, csrf }
    }

    pub async fn get(&self, path: &str) -> Answer {
        send(self.app, Method::GET, path, Some(&self.cookie), None).await
    }

    /// Posts a form with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        send(self.app, Method::POST, path, Some(&self.cookie), Some(&form)).await
    }
}

async fn sign_in_cookie_flags_and_sign_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // not signed in: every page sends you to sign in, and back afterwards
    let r = send(&app, Method::GET, "/ui/devices?search=x", None, None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/ui/sign-in?next=%2Fui%2Fdevices%3Fsearch%3Dx");
    let r = sign_in_form(&app, &[("token", ADMIN_TOKEN), ("next", "/ui/devices")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/ui/devices");
    let session = set_cookie(&r.headers, "dh_session").unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    assert!(!session.contains("Secure"), "plain http: no Secure flag ({session})");
    assert!(!session.contains("Max-Age") && !session.contains("Expires"), "a browser-session cookie: {session}");
    // somewhere else after signing in is refused: only the UI's own pages
    let r = sign_in_form(&app, &[("token", ADMIN_TOKEN), ("next", "https://elsewhere.example/")]).await;
    assert_eq!(r.location(), "/ui");

    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    assert_eq!(b.get("/ui/products").await.status, 200);
    let out = b.post("/ui/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    assert!(set_cookie(&out.headers, "dh_session").unwrap().contains("Max-Age=0"));
    // the row is gone: the old cookie no longer works anywhere
    let r = b.get("/ui/products").await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/ui/sign-in"));
    // a wrong cookie is as good as none
    let r = send(&app, Method::GET, "/ui", Some("dh_session=dh_forged"), None).await;
    assert_eq!(r.status, 303);
    // a wrong token signs nobody in
    let r = sign_in_form(&app, &[("token", "dh_not_a_token")]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    assert!(r.body.contains("You are not signed in, or the credentials are wrong."));
}

async fn the_cookie_is_secure_behind_https(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some(url::Url::parse("https://fw.example.com/").unwrap());
    })
    .await;
    let r = sign_in_form(&app, &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(r.status, 303);
    let session = set_cookie(&r.headers, "dh_session").unwrap();
    assert!(session.contains("; Secure"), "{session}");
}

async fn forms_need_the_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    let fields = [("tid", "P1"), ("name", "one")];
    // without the token, and with a wrong one: refused, nothing made
    let r = send(&app, Method::POST, "/ui/products", Some(&b.cookie), Some(&fields)).await;
    assert_eq!((r.status, r.error_code()), (403, "forbidden"), "{}", r.body);
    assert!(r.body.contains("CSRF"));
    let mut wrong = vec![("csrf", "dh_wrong")];
    wrong.extend_from_slice(&fields);
    let r = send(&app, Method::POST, "/ui/products", Some(&b.cookie), Some(&wrong)).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.get("/api/v1/products").await.body["count"], 0);
    // another session's token does not fit this one
    let other = Browser::with_token(&app, ADMIN_TOKEN).await;
    let mut foreign = vec![("csrf", other.csrf.as_str())];
    foreign.extend_from_slice(&fields);
    assert_eq!(send(&app, Method::POST, "/ui/products", Some(&b.cookie), Some(&foreign)).await.status, 403);
    // with it: made
    let r = b.post("/ui/products", &fields).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location().starts_with("/ui/products/"));
    assert_eq!(app.get("/api/v1/products").await.body["count"], 1);

    // the upload (a script's PUT) carries the token in a header
    app.post("/api/v1/models", json!({"tid": "CAFEBABE", "name": "m", "product": "P1"})).await.expect(201);
    let fw = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    let put = |csrf: Option<String>| {
        let mut req =
            no_redirects().put(app.url(&format!("/ui/firmware/{fw}/image?filename=a.bin"))).header("Cookie", &b.cookie);
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        req.body(vec![1u8; 4096]).send()
    };
    assert_eq!(put(None).await.unwrap().status(), 403);
    assert_eq!(put(Some("dh_wrong".into())).await.unwrap().status(), 403);
    let ok = put(Some(b.csrf.clone())).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!((body["size"].as_i64(), body["filename"].as_str()), (Some(4096), Some("a.bin")));
    // not signed in: a plain 401 for a script, not a redirect
    let anonymous = no_redirects().put(app.url(&format!("/ui/firmware/{fw}/image"))).body(vec![1u8; 10]).send().await;
    assert_eq!(anonymous.unwrap().status(), 401);

    // the sign-in form is tied to the browser that loaded it (no signing someone in from elsewhere)
    let r = send(&app, Method::POST, "/ui/sign-in", None, Some(&[("token", ADMIN_TOKEN), ("csrf", "x")])).await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r.headers, "dh_session").is_none());
}

async fn pages_carry_a_strict_policy_and_no_inline_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let fw = app.firmware("1.0.0", vec![3; 100], true).await;
    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    for path in [
        "/ui/sign-in".to_owned(),
        "/ui".into(),
        "/ui/products".into(),
        "/ui/delivery-procedures".into(),
        format!("/ui/firmware/{fw}"),
        "/ui/devices".into(),
        "/ui/sessions".into(),
        "/ui/users/me".into(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let csp = r.headers.get("content-security-policy").unwrap().to_str().unwrap();
        for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store", "{path}");
        assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff");
        assert!(!r.body.contains("<script>") && !r.body.contains(" style=") && !r.body.contains("<style"), "{path}");
        assert!(!r.body.contains(" onclick=") && !r.body.contains(" onsubmit="), "{path}");
        assert!(!r.body.contains("http://") && !r.body.contains("https://"), "{path} names another site");
    }
    let js = b.get("/ui/static/ui.js").await;
    assert_eq!(js.status, 200);
    assert!(js.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(b.get("/ui/static/nothing.js").await.status, 404);
}

/// A user with a role (or none) on a product and a password; returns a signed-in browser.
async fn person<'a>(app: &'a TestApp, name: &str, role: Option<(&str, Option<&str>)>) -> Browser<'a> {
    let password = format!("{name}-password-1");
    app.post("/api/v1/users", json!({"username": name, "password": password})).await.expect(201);
    if let Some((role, product)) = role {
        app.post("/api/v1/grants", json!({"user": name, "product": product, "role": role})).await.expect(201);
    }
    Browser::with_password(app, name, &password).await
}

async fn a_viewer_sees_and_cannot_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = app.seed_catalog().await;
    let fw = app.firmware("1.0.0", vec![3; 100], false).await;
    let viewer = person(&app, "vera", Some(("viewer", Some("P1")))).await;
    // sees
    let page = viewer.get(&format!("/ui/firmware/{fw}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("1.0.0"));
    // is offered no forms to change things
    assert!(!page.body.contains("id=\"upload\"") && !page.body.contains("/release\""), "{}", page.body);
    assert!(!viewer.get("/ui/models").await.body.contains("method=\"post\" action=\"/ui/models\""));
    // and a form posted anyway is refused, with the rights' words
    for (path, fields) in [
        ("/ui/models".to_owned(), vec![("tid", "NEWMODEL"), ("name", "n"), ("product", "P1")]),
        (format!("/ui/models/{}", c.model), vec![("name", "renamed")]),
        (format!("/ui/firmware/{fw}/release"), vec![]),
        (format!("/ui/firmware/{fw}/delete"), vec![]),
        ("/ui/products".to_owned(), vec![("tid", "P9"), ("name", "n")]),
    ] {
        let r = viewer.post(&path, &fields).await;
        assert_eq!((r.status, r.error_code()), (403, "forbidden"), "{path}: {}", r.body);
        assert!(r.body.contains("You may not do this."), "{path}");
    }
    assert_eq!(app.get("/api/v1/models").await.body["count"], 1);
    assert_eq!(app.get(&format!("/api/v1/firmware/{fw}")).await.body["state"], "draft");
}

async fn a_product_user_sees_only_their_product(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let fw1 = app.firmware("1.0.0", vec![3; 100], true).await;
    let p2 = app.post("/api/v1/products", json!({"tid": "SECRET2", "name": "two"})).await.expect(201).id();
    let m2 =
        app.post("/api/v1/models", json!({"tid": "HIDDENM", "name": "m", "product": "SECRET2"})).await.expect(201).id();
    let fw2 = app.post("/api/v1/firmware", json!({"model": "HIDDENM", "version": "7.7.7"})).await.expect(201).id();
    let d2 =
        app.post("/api/v1/devices", json!({"device_id": "hidden-device", "model": "HIDDENM"})).await.expect(201).id();
    let alice = person(&app, "alice", Some(("maintainer", Some("P1")))).await;
    // the other product's pages answer like pages of nothing
    for path in [
        format!("/ui/products/{p2}"),
        format!("/ui/models/{m2}"),
        format!("/ui/firmware/{fw2}"),
        format!("/ui/devices/{d2}"),
        "/ui/products/SECRET2".to_owned(),
        format!("/ui/products/{}", uuid::Uuid::new_v4()),
    ] {
        let r = alice.get(&path).await;
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{path}: {}", r.body);
        // (a name the URL itself holds is only echoed back)
        let leaks = ["SECRET2", "HIDDENM"].iter().any(|name| !path.contains(name) && r.body.contains(name));
        assert!(!leaks, "{path} leaks a name: {}", r.body);
    }
    // and its changes too, with the same answer as for what does not exist
    let r = alice.post(&format!("/ui/firmware/{fw2}/release"), &[]).await;
    assert_eq!(r.status, 404);
    let r = alice.post("/ui/models", &[("tid", "X1"), ("name", "x"), ("product", "SECRET2")]).await;
    assert_eq!((r.status, r.error_code()), (422, "unknown_reference"));
    // lists show only their own
    for path in ["/ui", "/ui/products", "/ui/models", "/ui/firmware", "/ui/devices", "/ui/sessions"] {
        let r = alice.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            !r.body.contains("SECRET2") && !r.body.contains("HIDDENM") && !r.body.contains("hidden-device"),
            "{path}"
        );
    }
    assert!(alice.get("/ui/firmware").await.body.contains(&format!("/ui/firmware/{fw1}")));
    // people are a global admin's: a product maintainer has an account page only
    assert_eq!(alice.get("/ui/users").await.status, 403);
    assert_eq!(alice.get("/ui/users/me").await.status, 200);
}

async fn failed_sign_ins_are_slowed_down(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post("/api/v1/users", json!({"username": "bob", "password": "bobs-password-1"})).await.expect(201);
    app.post("/api/v1/users", json!({"username": "carol", "password": "carols-password-1"})).await.expect(201);
    for _ in 0..5 {
        let r = sign_in_form(&app, &[("username", "bob"), ("password", "wrong-password")]).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // the sixth attempt waits, even with the right password: guessing gets nothing
    let r = sign_in_form(&app, &[("username", "bob"), ("password", "bobs-password-1")]).await;
    assert_eq!((r.status, r.error_code()), (429, "too_many_requests"), "{}", r.body);
    assert!(r.body.contains("try again in"));
    // the same user name in other case is the same user for the count
    let r = sign_in_form(&app, &[("username", "BOB"), ("password", "bobs-password-1")]).await;
    assert_eq!(r.status, 429);
    // someone else from the same address is not held up yet
    Browser::with_password(&app, "carol", "carols-password-1").await;
    // an unknown user takes as long and says the same as a wrong password
    let r = sign_in_form(&app, &[("username", "nobody-at-all"), ("password", "whatever-it-is")]).await;
    assert_eq!(r.status, 401);
    // the wait passes (2 s after the fifth failure), then the right password works again
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    Browser::with_password(&app, "bob", "bobs-password-1").await;

    // per address: past 20 failures from one address, everyone there waits
    for i in 0..14 {
        let name = format!("guess-{i}");
        assert_eq!(sign_in_form(&app, &[("username", &name), ("password", "x-x-x-x-x-x")]).await.status, 401);
    }
    let r = sign_in_form(&app, &[("username", "carol"), ("password", "carols-password-1")]).await;
    assert_eq!(r.status, 429, "{}", r.body);
}

async fn idle_sessions_end(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.ui_idle_secs = 1).await;
    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    assert_eq!(b.get("/ui/products").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = b.get("/ui/products").await;
    assert_eq!(r.status, 303, "idle past the limit: signed out");
    // the absolute limit holds however busy the browser is
    let app = TestApp::spawn_with(backend, |s| s.ui_session_max_secs = 1).await;
    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(b.get("/ui").await.status, 303);
}

async fn passwords_from_the_api_and_the_cli(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post("/api/v1/users", json!({"username": "dana"})).await.expect(201);
    // too short, and control characters, are refused
    let r = app.post("/api/v1/users/dana/password", json!({"password": "short"})).await;
    r.expect_error(400, "invalid");
    // an admin sets it
    app.post("/api/v1/users/dana/password", json!({"password": "first-password"})).await.expect(204);
    let dana = Browser::with_password(&app, "dana", "first-password").await;
    // dana changes her own, which needs the current one
    let token =
        app.post("/api/v1/users/dana/tokens", json!({"name": "t"})).await.body["token"].as_str().unwrap().to_owned();
    let wrong = json!({"password": "second-password", "current_password": "not-it"});
    app.call(Method::POST, "/api/v1/users/me/password", Some(&token), Some(wrong)).await.expect_error(403, "forbidden");
    let r = dana
        .post("/ui/users/me/password", &[("current_password", "first-password"), ("password", "second-password")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // the browser that changed it stays signed in
    assert_eq!(dana.get("/ui/users/me").await.status, 200);
    assert_eq!(sign_in_form(&app, &[("username", "dana"), ("password", "first-password")]).await.status, 401);
    Browser::with_password(&app, "dana", "second-password").await;
    // others may not set it
    let stranger = app.user_with_role("frank", None, None).await;
    let r = app
        .call(Method::POST, "/api/v1/users/dana/password", Some(&stranger), Some(json!({"password": "third-password"})))
        .await;
    r.expect_error(404, "not_found");
    // a deactivated user cannot sign in, and their browser sessions end
    app.patch("/api/v1/users/dana", json!({"active": false})).await.expect(200);
    assert_eq!(dana.get("/ui").await.status, 303);
    assert_eq!(sign_in_form(&app, &[("username", "dana"), ("password", "second-password")]).await.status, 401);

    // the CLI sets a password, read from standard input
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_devicehub"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DEVICEHUB_DATA_DIR", app.env.dir.path())
        .env("DATABASE_URL", &app.env.database_url)
        .env("RUST_LOG", "warn")
        .args(["admin", "create-user", "gina", "--role", "viewer", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ginas password\n").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("password set"));
    let gina = Browser::with_password(&app, "gina", "ginas password").await;
    assert_eq!(gina.get("/ui/users/me").await.status, 200);
}

async fn forms_show_problems_in_words(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let b = Browser::with_token(&app, ADMIN_TOKEN).await;
    // a procedure's steps are checked by the API's own parser, and the form keeps what was typed
    let steps = r#"[{"type": "gzip", "level": 42}]"#;
    let r = b
        .post(
            "/ui/delivery-procedures",
            &[("tid", "dp2"), ("name", "n"), ("delivery_method", "DEADBEEF"), ("steps", steps)],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (422, "invalid"), "{}", r.body);
    let api = app
        .post(
            "/api/v1/delivery-procedures",
            json!({"tid": "dp2", "name": "n", "delivery_method": "DEADBEEF", "steps": [{"type": "gzip", "level": 42}]}),
        )
        .await
        .expect_error(422, "invalid");
    let detail = api.body["detail"].as_str().unwrap();
    let escaped = detail.replace('"', "&#34;").replace('\'', "&#39;");
    assert!(
        r.body.contains(detail) || r.body.contains(&escaped),
        "the API's message {detail:?} is on the page:\n{}",
        r.body
    );
    assert!(r.body.contains("Some of the input is not valid."));
    assert!(r.body.contains("level"), "the typed steps are still in the form");
    // a duplicate handle, in words
    let r = b.post("/ui/products", &[("tid", "P1"), ("name", "again")]).await;
    assert_eq!((r.status, r.error_code()), (409, "already_exists"));
    assert!(r.body.contains("Something with this name or handle already exists."));
    // empty states say what to do next
    let page = b.get("/ui/devices").await.body;
    assert!(page.contains("No devices yet"), "{page}");
    assert!(b.get("/ui/firmware").await.body.contains("No firmware yet"));
}
