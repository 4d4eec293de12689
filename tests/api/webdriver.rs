//! Just enough of the W3C WebDriver protocol to drive headless Chromium through
//! `chromedriver` (JSON over HTTP with the test's own reqwest client; no WebDriver crate).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Chromium and its driver are (`CHROME_BIN`, `CHROMEDRIVER`, or Debian's paths).
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |env: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(env).map(PathBuf::from).filter(|p| p.is_file()) {
            return Some(p);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        names.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .chain(std::iter::once(Path::new("/usr/bin").join(name)))
                .find(|p| p.is_file())
        })
    };
    Some((find("CHROME_BIN", &["chromium", "chromium-browser"])?, find("CHROMEDRIVER", &["chromedriver"])?))
}

pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}"));
        let base = format!("{base}/session/{session}");
        Browser { http, base, driver, _profile: profile }
    }

    /// A WebDriver command; `Err` holds WebDriver's error.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"]["error"].is_string() { Err(r["value"].clone()) } else { Ok(r["value"].clone()) }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let path_shown = path.to_owned();
        self.try_call(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {path_shown}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css).await
    }

    /// The element, once it is there (up to 10 s).
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r: Value = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = r["value"][ELEMENT].as_str() {
                return Element(id.to_owned());
            }
            assert!(Instant::now() < deadline, "no element {css:?} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A command on an element; one the page's live refresh replaced meanwhile is looked up again.
    async fn on_element(&self, css: &str, method: reqwest::Method, command: &str, body: Option<Value>) -> Value {
        for _ in 0..10 {
            let e = self.find(css).await;
            match self.try_call(method.clone(), &format!("/element/{}/{command}", e.0), body.clone()).await {
                Ok(v) => return v,
                Err(err) if err["error"] == "stale element reference" => continue,
                Err(err) => panic!("{command} on {css}: {err}"),
            }
        }
        panic!("{css} kept being replaced");
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, reqwest::Method::POST, "click", Some(json!({}))).await;
    }

    /// Types into a field (after clearing it); a file input takes a path.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        if !css.contains("file") {
            self.call(reqwest::Method::POST, &format!("/element/{}/clear", e.0), Some(json!({}))).await;
        }
        self.call(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({"text": text}))).await;
    }

    /// Picks an option of a select by its visible text.
    pub async fn select(&self, css: &str, text: &str) {
        let script = "const s = document.querySelector(arguments[0]); const o = [...s.options].find(o => o.text.startsWith(arguments[1])); if (!o) { return false; } s.value = o.value; return true;";
        assert_eq!(self.script(script, json!([css, text])).await, true, "no option {text:?} in {css}");
    }

    pub async fn text(&self, css: &str) -> String {
        self.on_element(css, reqwest::Method::GET, "text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs a script in the page (WebDriver's own channel: the page's CSP does not apply).
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Waits until a script returns true (up to `secs`).
    pub async fn until(&self, what: &str, secs: u64, script: &str, args: Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.script(script, args.clone()).await != true {
            assert!(Instant::now() < deadline, "timed out waiting for {what} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    /// Saves a PNG of the page's visible part.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// The browser's console messages so far (chromedriver's log endpoint), if it has them.
    pub async fn console(&self) -> Vec<String> {
        let r = self.http.post(format!("{}/se/log", self.base)).json(&json!({"type": "browser"})).send().await;
        let Ok(r) = r else { return Vec::new() };
        let v: Value = r.json().await.unwrap_or(Value::Null);
        v["value"].as_array().map_or_else(Vec::new, |entries| {
            entries.iter().filter_map(|e| e["message"].as_str().map(str::to_owned)).collect()
        })
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
