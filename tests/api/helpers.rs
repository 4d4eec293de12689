//! The test harness: a real server on 127.0.0.1:0 over a fresh SQLite file or a fresh
#![allow(dead_code)] // shared by many test modules; not every module uses every helper
//! PostgreSQL schema, a real object store directory, and a reqwest client.

use std::path::PathBuf;

use devicehub::service::Hub;
use devicehub::settings::{Secret, Settings};
use devicehub::startup::Application;
use reqwest::Method;
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "dh_test_admin_token_0123456789abcdefghijklmnop";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` on both backends:
/// `<module>::sqlite::<name>` and `<module>::postgres::<name>`. The PostgreSQL half is
/// ignored (with the reason shown) unless `DATABASE_URL` was set when building.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(devicehub_pg_tests), ignore = "DATABASE_URL is unset: PostgreSQL tests skipped")]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A PostgreSQL schema of its own for one test, dropped afterwards.
pub struct PgSchema {
    server_url: String,
    name: String,
}

impl PgSchema {
    pub fn create() -> (PgSchema, String) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut server_url =
            std::env::var("DATABASE_URL").expect("DATABASE_URL must point at PostgreSQL for these tests");
        // Without TLS unless the URL asks for it: the test binary exits while pools of
        // finished tests still hold connections, and libpq's OpenSSL then tears down under
        // them (a SIGSEGV after every test passed). A loopback test database needs no TLS.
        if !server_url.contains("sslmode=") {
            server_url.push_str(if server_url.contains('?') { "&sslmode=disable" } else { "?sslmode=disable" });
        }
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::PgConnection::establish(&server_url).expect("connect to PostgreSQL");
        conn.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
        let sep = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{sep}options=-csearch_path%3D{name}");
        (PgSchema { server_url, name }, url)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.server_url) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// Where a test's server keeps its data; survives server restarts within the test.
pub struct TestEnv {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    _pg: Option<PgSchema>,
}

impl TestEnv {
    pub fn new(backend: Backend) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pg, database_url) = match backend {
            Backend::Sqlite => (None, format!("sqlite://{}", dir.path().join("devicehub.sqlite3").display())),
            Backend::Postgres => {
                let (schema, url) = PgSchema::create();
                (Some(schema), url)
            }
        };
        TestEnv { backend, dir, database_url, _pg: pg }
    }

    pub fn settings(&self) -> Settings {
        let mut s = Settings::for_data_dir(self.dir.path());
        s.listen = "127.0.0.1:0".into();
        s.database_url = self.database_url.clone();
        s.admin_token = Some(Secret::new(ADMIN_TOKEN));
        s.http_workers = 1;
        s.db_pool_size = 4;
        // look for jobs and timers often, so tests do not wait
        s.poll_interval_ms = 100;
        s
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.dir.path().join("objects")
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub hub: Hub,
    pub env: TestEnv,
    handle: actix_web::dev::ServerHandle,
    /// The server's task: it ends once the server drained and wrote what it keeps in memory.
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The JSON error code (`{"error": …}`).
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.body)).to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.code(), code, "unexpected error code; body: {}", self.body);
        assert!(self.body["detail"].is_string(), "error without detail: {}", self.body);
        self
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::start(TestEnv::new(backend), configure).await
    }

    /// Starts a server over an existing environment (used to restart).
    pub async fn start(env: TestEnv, configure: impl FnOnce(&mut Settings)) -> TestApp {
        init_logging();
        let mut settings = env.settings();
        configure(&mut settings);
        let app = Application::build(settings).await.expect("build the application");
        let base = format!("http://127.0.0.1:{}", app.port());
        let hub = app.hub().clone();
        let handle = app.handle();
        let running = tokio::spawn(app.run_until_stopped());
        TestApp { base, client: reqwest::Client::new(), hub, env, handle, running }
    }

    /// Stops the server and gives back its data, to start it again.
    pub async fn stop(self) -> TestEnv {
        self.handle.stop(true).await;
        self.running.await.expect("the server task").expect("the server stopped cleanly");
        self.env
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(ADMIN_TOKEN), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(ADMIN_TOKEN), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(ADMIN_TOKEN), None).await
    }

    /// Uploads an image body (raw bytes) to a firmware.
    pub async fn upload(&self, firmware: &str, bytes: Vec<u8>, query: &str) -> Resp {
        let req = self
            .client
            .put(self.url(&format!("/api/v1/firmware/{firmware}/image{query}")))
            .header("Authorization", format!("Token {ADMIN_TOKEN}"))
            .body(bytes);
        Resp::from(req.send().await.expect("upload")).await
    }

    /// A user holding `role` on `product` (or everywhere), and a token of theirs.
    pub async fn user_with_role(&self, username: &str, role: Option<&str>, product: Option<&str>) -> String {
        let user = self.post("/api/v1/users", json!({"username": username})).await.expect(201).id();
        if let Some(role) = role {
            self.post("/api/v1/grants", json!({"user": user, "product": product, "role": role})).await.expect(201);
        }
        let token = self.post(&format!("/api/v1/users/{user}/tokens"), json!({"name": "test"})).await.expect(201);
        token.body["token"].as_str().expect("token shown once").to_owned()
    }

    /// The seed's catalog: product `P1`, model `CAFEBABE`, channel `BAADFOOD`, delivery
    /// method `DEADBEEF`, procedure `dp-handle`.
    pub async fn seed_catalog(&self) -> Catalog {
        let product = self.post("/api/v1/products", json!({"tid": "P1", "name": "Product one"})).await.expect(201).id();
        let model = self
            .post("/api/v1/models", json!({"tid": "CAFEBABE", "name": "Model", "product": "P1"}))
            .await
            .expect(201)
            .id();
        let channel = self
            .post("/api/v1/channels", json!({"tid": "BAADFOOD", "name": "stable", "product": "P1"}))
            .await
            .expect(201)
            .id();
        let method = self
            .post("/api/v1/delivery-methods", json!({"tid": "DEADBEEF", "name": "HTTP link"}))
            .await
            .expect(201)
            .id();
        let procedure = self
            .post(
                "/api/v1/delivery-procedures",
                json!({"tid": "dp-handle", "name": "plain", "delivery_method": "DEADBEEF", "confirm": true}),
            )
            .await
            .expect(201)
            .id();
        Catalog { product, model, channel, method, procedure }
    }

    /// A firmware of `CAFEBABE` in `BAADFOOD`, with an image; released if asked.
    pub async fn firmware(&self, version: &str, image: Vec<u8>, release: bool) -> String {
        let id = self
            .post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": version, "channels": ["BAADFOOD"]}))
            .await
            .expect(201)
            .id();
        self.upload(&id, image, "").await.expect(200);
        if release {
            self.post(&format!("/api/v1/firmware/{id}/release"), json!({})).await.expect(200);
        }
        id
    }
}

/// Seed 003's request body, with the given current version.
pub fn seed_request(current: &str) -> Value {
    json!({
        "model": "CAFEBABE",
        "device_id": "my-device-id",
        "delivery_method": "DEADBEEF",
        "delivery_procedure_tid": "dp-handle",
        "current_channel": "BAADFOOD",
        "current_firmware_version": current,
        "allow_draft_firmware": false,
    })
}

impl TestApp {
    /// `POST /api/v1/firmware-update/request` as the admin.
    pub async fn request_update(&self, body: Value) -> Resp {
        self.post("/api/v1/firmware-update/request", body).await
    }

    pub async fn session(&self, id: &str) -> Resp {
        self.get(&format!("/api/v1/firmware-update/{id}/")).await
    }

    pub async fn start_session(&self, id: &str) -> Resp {
        self.call(Method::POST, &format!("/api/v1/firmware-update/{id}/start"), Some(ADMIN_TOKEN), None).await
    }

    pub async fn confirm_session(&self, id: &str, success: bool) -> Resp {
        self.post(&format!("/api/v1/firmware-update/{id}/confirm"), json!({"success": success})).await
    }

    /// A session's history, newest first.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/firmware-update/{id}/events")).await.expect(200);
        r.body.as_array().expect("events are a list").clone()
    }

    /// The kinds of a session's events, newest first.
    pub async fn event_kinds(&self, id: &str) -> Vec<String> {
        self.events(id).await.iter().map(|e| e["kind"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// The states a session went through, oldest first ("-" for events without one).
    pub async fn state_path(&self, id: &str) -> Vec<String> {
        let events = self.events(id).await;
        events.iter().rev().map(|e| e["to_state"].as_str().unwrap_or("-").to_owned()).collect()
    }

    /// Polls the session until its state is one of `states` (panics after 30 s).
    pub async fn wait_for_state(&self, id: &str, states: &[&str]) -> Resp {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = self.session(id).await;
            if r.status == 200 && states.contains(&r.body["state"].as_str().unwrap_or_default()) {
                return r;
            }
            assert!(std::time::Instant::now() < deadline, "session {id} never reached {states:?}; last: {}", r.body);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A session in `created` (or `success` without a confirm step), started and processed.
    pub async fn ready_deliverable(&self, current: &str) -> Resp {
        let id = self.request_update(seed_request(current)).await.expect(201).id();
        self.start_session(&id).await.expect(200);
        self.wait_for_state(&id, &["created", "success"]).await
    }
}

pub struct Catalog {
    pub product: String,
    pub model: String,
    pub channel: String,
    pub method: String,
    pub procedure: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp { status, headers, body }
    }
}

/// Logs only when `TEST_LOG` is set (zero2prod's habit).
fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        devicehub::telemetry::init(devicehub::settings::LogFormat::Pretty);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (so failures reproduce).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// All files under a directory (recursively).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
