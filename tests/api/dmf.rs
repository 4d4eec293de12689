//! hawkBit DMF over AMQP against the real RabbitMQ: each test gets a vhost of its own (so
//! tests run in parallel) and plays a gateway with a plain `lapin` client: it publishes to
//! `dmf.exchange` and listens on its own reply exchange. Skipped, with the reason, when
//! `AMQP_URL` was unset at build time.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, pseudo_random};

/// Like `on_both_backends!`, and skipped without a broker.
macro_rules! dmf_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(devicehub_amqp_tests), ignore = "AMQP_URL is unset: DMF tests skipped")]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(devicehub_amqp_tests), ignore = "AMQP_URL is unset: DMF tests skipped")]
                #[cfg_attr(
                    all(devicehub_amqp_tests, not(devicehub_pg_tests)),
                    ignore = "DATABASE_URL is unset: PostgreSQL tests skipped"
                )]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

dmf_tests!(
    a_thing_registers_installs_and_reports,
    errors_attributes_and_ping,
    cancel_both_ways_and_download_only,
    malformed_messages_go_to_the_dead_letter_queue,
    removal_deletion_attribute_requests_and_ddi,
    nothing_is_lost_or_applied_twice_when_the_broker_drops_connections,
    consent_over_dmf_and_a_reply_exchange_that_does_not_exist,
    a_clashing_topology_is_named,
);

const WAIT: Duration = Duration::from_secs(30);

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl").args(args).output().expect("run rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A RabbitMQ vhost of this test's own, deleted afterwards.
struct Vhost {
    name: String,
    url: String,
}

impl Vhost {
    fn create() -> Vhost {
        let base = std::env::var("AMQP_URL")
            .ok()
            .or_else(|| option_env!("AMQP_URL").map(str::to_owned))
            .expect("AMQP_URL points at RabbitMQ");
        let name = format!("dh-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        let user = url::Url::parse(&base).expect("AMQP_URL").username().to_owned();
        let user = if user.is_empty() { "guest".to_owned() } else { user };
        rabbitmqctl(&["set_permissions", "-p", &name, &user, ".*", ".*", ".*"]);
        let mut url = url::Url::parse(&base).expect("AMQP_URL");
        url.set_path(&format!("/{name}"));
        Vhost { name, url: url.to_string() }
    }

    /// Closes every connection to the vhost, the server's and the gateway's, as a broker
    /// restart would.
    fn close_connections(&self) {
        rabbitmqctl(&["close_all_connections", "--vhost", &self.name, "test: the broker drops connections"]);
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

/// A received message: headers, properties and body.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Received {
    fn topic(&self) -> &str {
        self.headers.get("topic").or_else(|| self.headers.get("type")).map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn received(d: &lapin::message::Delivery) -> Received {
    let p = &d.properties;
    let headers = p
        .headers()
        .as_ref()
        .map(|t| {
            t.inner()
                .iter()
                .filter_map(|(k, v)| match v {
                    AMQPValue::LongString(s) => {
                        Some((k.to_string(), String::from_utf8_lossy(s.as_bytes()).into_owned()))
                    }
                    AMQPValue::ShortString(s) => Some((k.to_string(), s.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Received {
        headers,
        correlation_id: p.correlation_id().as_ref().map(ToString::to_string),
        content_type: p.content_type().as_ref().map(ToString::to_string),
        body: d.data.clone(),
    }
}

/// The test's gateway: publishes to `dmf.exchange`, listens on its own reply exchange.
struct Gateway {
    url: String,
    exchange: String,
    _conn: Connection,
    channel: Channel,
    inbox: Consumer,
    /// Messages read while looking for another one.
    seen: Vec<Received>,
}

impl Gateway {
    async fn connect(url: &str, exchange: &str) -> Gateway {
        let conn = Connection::connect(url, ConnectionProperties::default()).await.expect("gateway connects");
        let channel = conn.create_channel().await.expect("channel");
        // confirmed publishes: a message the broker took is not lost when the connection drops
        channel.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.unwrap();
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare(exchange.into(), ExchangeKind::Fanout, durable, FieldTable::default()).await.unwrap();
        let queue = format!("{exchange}.inbox");
        let q = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(queue.as_str().into(), q, FieldTable::default()).await.unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let inbox = channel
            .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .unwrap();
        Gateway { url: url.to_owned(), exchange: exchange.to_owned(), _conn: conn, channel, inbox, seen: Vec::new() }
    }

    /// Connects again (after the broker closed the connection); unread messages wait in the queue.
    async fn reconnect(self) -> Gateway {
        let (url, exchange, seen) = (self.url.clone(), self.exchange.clone(), self.seen);
        let mut g = Gateway::connect(&url, &exchange).await;
        g.seen = seen;
        g
    }

    /// Publishes to `dmf.exchange` (reply_to = this gateway's exchange).
    async fn send(&self, headers: &[(&str, &str)], correlation_id: Option<&str>, body: &[u8]) {
        self.send_with(headers, correlation_id, Some("application/json"), Some(&self.exchange), body).await
    }

    async fn send_with(
        &self,
        headers: &[(&str, &str)],
        correlation_id: Option<&str>,
        content_type: Option<&str>,
        reply_to: Option<&str>,
        body: &[u8],
    ) {
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert((*k).into(), AMQPValue::LongString((*v).into()));
        }
        let mut p = BasicProperties::default().with_headers(table);
        if let Some(ct) = content_type {
            p = p.with_content_type(ct.into());
        }
        if let Some(r) = reply_to {
            p = p.with_reply_to(r.into());
        }
        if let Some(c) = correlation_id {
            p = p.with_correlation_id(c.into());
        }
        self.channel
            .basic_publish("dmf.exchange".into(), "".into(), BasicPublishOptions::default(), body, p)
            .await
            .expect("publish")
            .await
            .expect("published");
    }

    async fn thing_created(&self, thing: &str, body: Value) {
        self.send(&[("type", "THING_CREATED"), ("tenant", "P1"), ("thingId", thing)], None, body.to_string().as_bytes())
            .await
    }

    async fn status(&self, action: i64, status: &str, correlation_id: &str) {
        let body =
            json!({"actionId": action, "actionStatus": status, "message": [format!("{status} from the gateway")]});
        self.send(
            &[("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ACTION_STATUS")],
            Some(correlation_id),
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn next(&mut self) -> Received {
        let d = tokio::time::timeout(WAIT, self.inbox.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {WAIT:?}; seen before: {:?}", self.seen))
            .expect("the inbox is open")
            .expect("a delivery");
        d.ack(BasicAckOptions::default()).await.expect("ack");
        received(&d)
    }

    /// The next message of `topic` (others are kept in `seen`).
    async fn expect(&mut self, topic: &str) -> Received {
        if let Some(i) = self.seen.iter().position(|m| m.topic() == topic) {
            return self.seen.remove(i);
        }
        loop {
            let m = self.next().await;
            if m.topic() == topic {
                return m;
            }
            self.seen.push(m);
        }
    }

    /// Messages in the dead-letter queue, taken from it.
    async fn dead_letters(&self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get("dmf_connector_deadletter_ttl".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            out.push(received(&m.delivery));
        }
        out
    }
}

/// A server with the DMF door on this vhost; returns once its link is up.
async fn server(backend: Backend, vhost: &Vhost) -> TestApp {
    let url = vhost.url.clone();
    let app = TestApp::spawn_with(backend, move |s| s.amqp_url = Some(devicehub::settings::Secret::new(url))).await;
    wait_linked(&app).await;
    app
}

async fn wait_linked(app: &TestApp) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = app.get("/readyz").await;
        if r.body["amqp"] == "ok" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the DMF door never linked: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seed catalog and a released firmware 1.1.0; its image.
async fn fleet(app: &TestApp) -> (String, Vec<u8>) {
    app.seed_catalog().await;
    let image = pseudo_random(100 * 1024 + 3, 71);
    let fw = app.firmware("1.1.0", image.clone(), true).await;
    (fw, image)
}

/// The device `thing` as the admin API shows it.
async fn device(app: &TestApp, thing: &str) -> Value {
    let listed = app.get(&format!("/api/v1/devices?device_id={thing}")).await.expect(200);
    listed.body["results"][0].clone()
}

/// Assigns `fw`; the session id and the action id (a number).
async fn assign(app: &TestApp, fw: &str, body: Value) -> (String, i64) {
    let r = app.post(&format!("/api/v1/firmware/{fw}/assign"), body).await.expect(201);
    let s = &r.body["sessions"][0];
    (s["id"].as_str().unwrap().to_owned(), s["action"]["id"].as_str().unwrap().parse().unwrap())
}

async fn download(app: &TestApp, url: &str, token: &str) -> (u16, Vec<u8>) {
    let r = app.client.get(url).header("Authorization", format!("TargetToken {token}")).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Waits until the session's history holds `n` events of `kind`.
async fn wait_events(app: &TestApp, session: &str, kind: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let count = app.event_kinds(session).await.iter().filter(|k| *k == kind).count();
        if count >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{session} never had {n} {kind} events");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ping(gw: &mut Gateway, id: &str) {
    gw.send(&[("type", "PING"), ("tenant", "P1")], Some(id), b"").await;
    let pong = gw.expect("PING_RESPONSE").await;
    assert_eq!(pong.correlation_id.as_deref(), Some(id));
    assert_eq!(pong.content_type.as_deref(), Some("text/plain"));
    let millis: i64 = String::from_utf8(pong.body).unwrap().parse().expect("epoch millis");
    assert!(millis > 1_700_000_000_000);
}

async fn a_thing_registers_installs_and_reports(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, image) = fleet(&app).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;

    // THING_CREATED registers the thing: name, type (model) and attributes
    let created = json!({"name": "Thing one", "type": "CAFEBABE", "attributeUpdate": {"attributes": {"hw": "2"}, "mode": "MERGE"}});
    gw.thing_created("thing-1", created).await;
    let deadline = std::time::Instant::now() + WAIT;
    let d = loop {
        let d = device(&app, "thing-1").await;
        if !d.is_null() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "THING_CREATED never registered the thing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(d["name"], "Thing one");
    assert_eq!(d["model"], app.get("/api/v1/models/CAFEBABE").await.id().as_str());
    assert_eq!(d["attributes"], json!({"hw": "2"}));
    assert_eq!(d["dmf_reply_to"], "gw.replies");
    let device_id = d["id"].as_str().unwrap().to_owned();

    // an assignment through the admin API goes out over AMQP once the deliverable is ready
    let (session, action) = assign(&app, &fw, json!({"devices": ["thing-1"]})).await;
    let m = gw.expect("DOWNLOAD_AND_INSTALL").await;
    assert_eq!(m.headers["type"], "EVENT");
    assert_eq!(m.headers["thingId"], "thing-1");
    assert_eq!(m.headers["tenant"], "P1");
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    let body = m.json();
    assert_eq!(body["actionId"], json!(action), "actionId is a JSON number, the DDI action id");
    let module = &body["softwareModules"][0];
    assert_eq!(module["moduleVersion"], "1.1.0");
    let artifact = &module["artifacts"][0];
    assert_eq!(artifact["size"], json!(image.len()));
    assert_eq!(artifact["hashes"]["sha256"], crate::helpers::sha256_hex(&image));
    assert!(artifact["hashes"]["sha1"].is_string() && artifact["hashes"]["md5"].is_string());
    let url = artifact["urls"]["HTTP"].as_str().expect("an HTTP URL").to_owned();
    assert!(url.starts_with(&app.base), "absolute from the public URL: {url}");
    assert!(artifact["urls"].get("HTTPS").is_none(), "no HTTPS URL on an http public URL");

    // the gateway downloads with the target token it was given
    let token = body["targetSecurityToken"].as_str().expect("the target token").to_owned();
    assert_eq!(download(&app, &url, &token).await, (200, image.clone()));
    assert_eq!(download(&app, &url, "wrong").await.0, 401);

    // RUNNING … FINISHED: success, and the twin runs the new version
    gw.status(action, "RETRIEVED", "s-1").await;
    gw.status(action, "DOWNLOAD", "s-2").await;
    gw.status(action, "RUNNING", "s-3").await;
    wait_events(&app, &session, "device:RUNNING", 1).await;
    assert_eq!(app.session(&session).await.body["state"], "created", "RUNNING does not close the action");
    gw.status(action, "FINISHED", "s-4").await;
    app.wait_for_state(&session, &["success"]).await;
    let twin = app.get(&format!("/api/v1/devices/{device_id}")).await.expect(200);
    assert_eq!(twin.body["installed_version"], "1.1.0");
    assert_eq!(twin.body["installed_firmware"], fw.as_str());
    // hawkBit asks for fresh attributes after an update
    gw.expect("REQUEST_ATTRIBUTES_UPDATE").await;
    let kinds = app.event_kinds(&session).await;
    for k in ["device:RETRIEVED", "device:DOWNLOAD", "device:RUNNING", "device:FINISHED"] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    // a late RUNNING is acknowledged and kept as ignored, not dead-lettered
    gw.status(action, "RUNNING", "s-5").await;
    wait_events(&app, &session, "server:ignored", 1).await;
    assert_eq!(app.session(&session).await.body["state"], "success");
    assert!(gw.dead_letters().await.is_empty());
    ping(&mut gw, "ping-1").await;
}

async fn errors_attributes_and_ping(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, _) = fleet(&app).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;
    gw.thing_created("thing-2", json!({})).await;
    ping(&mut gw, "ping-0").await; // the THING_CREATED before it has been applied

    // the three attribute modes, as DDI configData
    let attrs = |mode: &str, a: Value| json!({"attributes": a, "mode": mode}).to_string();
    let h = [("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ATTRIBUTES"), ("thingId", "thing-2")];
    gw.send(&h, None, attrs("MERGE", json!({"a": "1", "b": "2"})).as_bytes()).await;
    gw.send(&h, None, attrs("MERGE", json!({"c": "3"})).as_bytes()).await;
    ping(&mut gw, "p-1").await;
    assert_eq!(device(&app, "thing-2").await["attributes"], json!({"a": "1", "b": "2", "c": "3"}));
    gw.send(&h, None, attrs("REMOVE", json!({"a": ""})).as_bytes()).await;
    ping(&mut gw, "p-2").await;
    assert_eq!(device(&app, "thing-2").await["attributes"], json!({"b": "2", "c": "3"}));
    gw.send(&h, None, attrs("REPLACE", json!({"z": "9"})).as_bytes()).await;
    ping(&mut gw, "p-3").await;
    assert_eq!(device(&app, "thing-2").await["attributes"], json!({"z": "9"}));

    // the ERROR path
    let (session, action) = assign(&app, &fw, json!({"devices": ["thing-2"]})).await;
    gw.expect("DOWNLOAD_AND_INSTALL").await;
    gw.status(action, "RUNNING", "e-1").await;
    gw.status(action, "ERROR", "e-2").await;
    app.wait_for_state(&session, &["fail"]).await;
    let twin = device(&app, "thing-2").await;
    assert!(twin["installed_version"].is_null(), "nothing installed: {twin}");
    assert!(app.event_kinds(&session).await.contains(&"device:ERROR".to_owned()));

    // a PING without reply_to is answered on the default reply exchange, sp.direct.exchange
    gw.send_with(&[("type", "PING"), ("tenant", "P1")], Some("p-default"), None, None, b"").await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = gw.channel.basic_get("sp_direct_queue".into(), BasicGetOptions { no_ack: true }).await.unwrap();
        if let Some(m) = got {
            assert_eq!(received(&m.delivery).correlation_id.as_deref(), Some("p-default"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no PING_RESPONSE in sp_direct_queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cancel_both_ways_and_download_only(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, _) = fleet(&app).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;
    gw.thing_created("thing-3", json!({"type": "CAFEBABE"})).await;
    ping(&mut gw, "p-0").await;

    // the admin cancels; the thing confirms with CANCELED
    let (s1, a1) = assign(&app, &fw, json!({"devices": ["thing-3"]})).await;
    gw.expect("DOWNLOAD_AND_INSTALL").await;
    app.post(&format!("/api/v1/firmware-update/{s1}/cancel"), json!({})).await.expect(200);
    let cancel = gw.expect("CANCEL_DOWNLOAD").await;
    assert_eq!(cancel.json(), json!({"actionId": a1}));
    gw.status(a1, "CANCELED", "c-1").await;
    let s = app.wait_for_state(&s1, &["fail"]).await;
    assert_eq!(s.body["payload"]["reason"], "canceled");

    // the admin cancels; the thing refuses: the update goes on and is sent again
    let (s2, a2) = assign(&app, &fw, json!({"devices": ["thing-3"]})).await;
    gw.expect("DOWNLOAD_AND_INSTALL").await;
    app.post(&format!("/api/v1/firmware-update/{s2}/cancel"), json!({})).await.expect(200);
    gw.expect("CANCEL_DOWNLOAD").await;
    gw.status(a2, "CANCEL_REJECTED", "c-2").await;
    let again = gw.expect("DOWNLOAD_AND_INSTALL").await;
    assert_eq!(again.json()["actionId"], json!(a2));
    gw.status(a2, "FINISHED", "c-3").await;
    app.wait_for_state(&s2, &["success"]).await;

    // a CANCELED for an action nobody asked to cancel is refused (dead-lettered)
    let (s3, a3) = assign(&app, &fw, json!({"devices": ["thing-3"], "action_type": "download_only"})).await;
    let dl = gw.expect("DOWNLOAD").await;
    assert_eq!(dl.json()["actionId"], json!(a3), "download-only goes out as DOWNLOAD");
    gw.status(a3, "CANCELED", "c-4").await;
    ping(&mut gw, "p-1").await;
    let dead = gw.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    // download-only: DOWNLOADED ends it; nothing is installed
    gw.status(a3, "DOWNLOADED", "c-5").await;
    app.wait_for_state(&s3, &["success"]).await;
    assert_eq!(device(&app, "thing-3").await["installed_version"], "1.1.0", "still the version of action {a2}");

    // a superseded action: the thing is told to cancel the old one first, then gets the new one
    let newer = app.firmware("1.2.0", pseudo_random(2048, 72), true).await;
    let (old, old_action) = assign(&app, &fw, json!({"devices": ["thing-3"]})).await;
    gw.expect("DOWNLOAD_AND_INSTALL").await;
    app.wait_for_state(&old, &["created"]).await;
    let (new, new_action) = assign(&app, &newer, json!({"devices": ["thing-3"]})).await;
    let c = gw.expect("CANCEL_DOWNLOAD").await;
    assert_eq!(c.json()["actionId"], json!(old_action));
    app.wait_for_state(&new, &["created"]).await;
    gw.status(old_action, "CANCELED", "c-6").await;
    let next = gw.expect("DOWNLOAD_AND_INSTALL").await;
    assert_eq!(next.json()["actionId"], json!(new_action));
    gw.status(new_action, "FINISHED", "c-7").await;
    app.wait_for_state(&new, &["success"]).await;
    assert_eq!(device(&app, "thing-3").await["installed_version"], "1.2.0");
}

type Headers = Vec<(&'static str, &'static str)>;

async fn malformed_messages_go_to_the_dead_letter_queue(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (_fw, _) = fleet(&app).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;
    gw.thing_created("thing-4", json!({})).await;
    ping(&mut gw, "p-0").await;
    let status = |id: i64| json!({"actionId": id, "actionStatus": "RUNNING"}).to_string();
    let cases: Vec<(&str, Headers, String)> = vec![
        ("no type header", vec![("tenant", "P1"), ("thingId", "thing-4")], "{}".into()),
        ("unknown type", vec![("type", "HELLO"), ("tenant", "P1")], "{}".into()),
        ("no topic header", vec![("type", "EVENT"), ("tenant", "P1")], "{}".into()),
        ("unknown topic", vec![("type", "EVENT"), ("tenant", "P1"), ("topic", "HELLO")], "{}".into()),
        ("invalid JSON", vec![("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ACTION_STATUS")], "{nope".into()),
        ("unknown tenant", vec![("type", "EVENT"), ("tenant", "NOPE"), ("topic", "UPDATE_ACTION_STATUS")], status(1)),
        (
            "unknown thing",
            vec![("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ATTRIBUTES"), ("thingId", "nobody")],
            json!({"attributes": {"a": "1"}}).to_string(),
        ),
        (
            "unknown action",
            vec![("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ACTION_STATUS")],
            status(999_999),
        ),
        (
            "invalid attributes",
            vec![("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_ATTRIBUTES"), ("thingId", "thing-4")],
            json!({"attributes": {"a": "ü"}}).to_string(),
        ),
    ];
    for (n, (what, headers, body)) in cases.iter().enumerate() {
        gw.send(headers, Some(&format!("bad-{n}")), body.as_bytes()).await;
        // the consumer lives on: the next PING is answered
        ping(&mut gw, &format!("after-{what}")).await;
    }
    let dead = gw.dead_letters().await;
    let ids: Vec<_> = dead.iter().filter_map(|m| m.correlation_id.clone()).collect();
    let expected: Vec<_> = (0..cases.len()).map(|n| format!("bad-{n}")).collect();
    assert_eq!(ids, expected, "every malformed message is dead-lettered, in order");
    assert!(
        dead.iter().all(|m| m.headers.get("x-first-death-reason").map(String::as_str) == Some("rejected")),
        "rejected, not expired: {dead:?}"
    );
}

async fn removal_deletion_attribute_requests_and_ddi(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, image) = fleet(&app).await;
    let newer = app.firmware("1.2.0", pseudo_random(4096, 73), true).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;

    // an admin asks a DMF thing for its attributes
    gw.thing_created("thing-5", json!({"type": "CAFEBABE"})).await;
    ping(&mut gw, "p-0").await;
    let id = device(&app, "thing-5").await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/devices/{id}/request-attributes"), json!({})).await.expect(200);
    let m = gw.expect("REQUEST_ATTRIBUTES_UPDATE").await;
    assert_eq!(m.headers["thingId"], "thing-5");

    // a thing registered over DMF updates over DDI with its target token, and stays a DMF thing
    let (s1, a1) = assign(&app, &fw, json!({"devices": ["thing-5"]})).await;
    let d = gw.expect("DOWNLOAD_AND_INSTALL").await.json();
    let token = d["targetSecurityToken"].as_str().unwrap().to_owned();
    let auth = format!("TargetToken {token}");
    let poll = ddi(&app, Method::GET, "thing-5", "", &auth, None).await.expect(200);
    let href = poll.body["_links"]["deploymentBase"]["href"].as_str().expect("the same action over DDI").to_owned();
    assert!(href.contains(&format!("/deploymentBase/{a1}")), "{href}");
    let base = ddi(&app, Method::GET, "thing-5", &format!("/deploymentBase/{a1}"), &auth, None).await.expect(200);
    let url =
        base.body["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download"]["href"].as_str().unwrap().to_owned();
    assert_eq!(download(&app, &url, &token).await, (200, image));
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    ddi(&app, Method::POST, "thing-5", &format!("/deploymentBase/{a1}/feedback"), &auth, Some(closed))
        .await
        .expect(200);
    app.wait_for_state(&s1, &["success"]).await;
    assert_eq!(device(&app, "thing-5").await["dmf_reply_to"], "gw.replies", "the DDI poll did not unmark it");
    // …and the next assignment still goes out over AMQP
    let (_, a2) = assign(&app, &newer, json!({"devices": ["thing-5"]})).await;
    assert_eq!(gw.expect("DOWNLOAD_AND_INSTALL").await.json()["actionId"], json!(a2));

    // a rotated token reaches the gateway with the next message
    let rotated = app.post(&format!("/api/v1/devices/{id}/target-token"), json!({})).await.expect(200);
    let new_token = rotated.body["target_token"].as_str().unwrap().to_owned();
    gw.thing_created("thing-5", json!({})).await; // hawkBit answers with the open action
    let again = gw.expect("DOWNLOAD_AND_INSTALL").await.json();
    assert_eq!(again["targetSecurityToken"], new_token.as_str());

    // an admin marks a device made through the admin API as a DMF thing
    let made = app.post("/api/v1/devices", json!({"device_id": "thing-6", "model": "CAFEBABE"})).await.expect(201);
    let made_id = made.id();
    app.patch(&format!("/api/v1/devices/{made_id}"), json!({"dmf_reply_to": "gw.replies"})).await.expect(200);
    let (_, a6) = assign(&app, &fw, json!({"devices": ["thing-6"]})).await;
    let m6 = gw.expect("DOWNLOAD_AND_INSTALL").await;
    assert_eq!((m6.headers["thingId"].as_str(), m6.json()["actionId"].clone()), ("thing-6", json!(a6)));
    assert_eq!(m6.json()["targetSecurityToken"], made.body["target_token"]);

    // an admin delete of a DMF thing sends THING_DELETED
    app.delete(&format!("/api/v1/devices/{made_id}")).await.expect(204);
    let deleted = gw.expect("THING_DELETED").await;
    assert_eq!(deleted.headers["thingId"], "thing-6");
    // THING_REMOVED deletes the device (and is answered with THING_DELETED too)
    gw.send(&[("type", "THING_REMOVED"), ("tenant", "P1"), ("thingId", "thing-5")], None, b"").await;
    let removed = gw.expect("THING_DELETED").await;
    assert_eq!(removed.headers["thingId"], "thing-5");
    assert!(device(&app, "thing-5").await.is_null());
}

async fn ddi(app: &TestApp, method: Method, device: &str, tail: &str, auth: &str, body: Option<Value>) -> Resp {
    let mut req =
        app.client.request(method, app.url(&format!("/P1/controller/v1/{device}{tail}"))).header("Authorization", auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::from(req.send().await.unwrap()).await
}

async fn nothing_is_lost_or_applied_twice_when_the_broker_drops_connections(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, _) = fleet(&app).await;
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;
    let things: Vec<String> = (0..5).map(|n| format!("thing-r{n}")).collect();
    for t in &things {
        gw.thing_created(t, json!({"type": "CAFEBABE"})).await;
    }
    ping(&mut gw, "p-0").await;
    let r = app.post(&format!("/api/v1/firmware/{fw}/assign"), json!({"devices": things})).await.expect(201);
    let actions: Vec<(String, i64)> = r.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["action"]["id"].as_str().unwrap().parse().unwrap()))
        .collect();
    // the broker drops every connection while the assignments go out
    vhost.close_connections();
    let mut gw = gw.reconnect().await;
    wait_linked(&app).await;
    let mut announced = BTreeMap::new();
    while announced.len() < actions.len() {
        let m = gw.expect("DOWNLOAD_AND_INSTALL").await;
        *announced.entry(m.json()["actionId"].as_i64().unwrap()).or_insert(0) += 1;
    }
    // every status is sent twice (as a redelivery after a lost acknowledgement would be),
    // and the connections drop again in the middle
    for (n, (_, action)) in actions.iter().enumerate() {
        let id = format!("run-{action}");
        gw.status(*action, "RUNNING", &id).await;
        gw.status(*action, "RUNNING", &id).await;
        if n == 2 {
            vhost.close_connections();
            gw = gw.reconnect().await;
        }
    }
    for (_, action) in &actions {
        let id = format!("fin-{action}");
        gw.status(*action, "FINISHED", &id).await;
        gw.status(*action, "FINISHED", &id).await;
    }
    for (session, _) in &actions {
        app.wait_for_state(session, &["success"]).await;
        let kinds = app.event_kinds(session).await;
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        assert_eq!(count("device:RUNNING"), 1, "RUNNING applied once: {kinds:?}");
        assert_eq!(count("device:FINISHED"), 1, "FINISHED applied once: {kinds:?}");
        assert_eq!(count("server:ignored"), 0, "a redelivery is recognised, not even noted: {kinds:?}");
    }
    for (_, action) in &actions {
        assert!(announced.contains_key(action), "DOWNLOAD_AND_INSTALL of {action} never arrived");
    }
    assert!(gw.dead_letters().await.is_empty());
}

async fn consent_over_dmf_and_a_reply_exchange_that_does_not_exist(backend: Backend) {
    let vhost = Vhost::create();
    let app = server(backend, &vhost).await;
    let (fw, _) = fleet(&app).await;
    app.patch("/api/v1/products/P1", json!({"ddi": {"confirmation_required": true}})).await.expect(200);
    let mut gw = Gateway::connect(&vhost.url, "gw.replies").await;
    gw.thing_created("thing-7", json!({"type": "CAFEBABE"})).await;
    ping(&mut gw, "p-0").await;

    // consent first: CONFIRM, then CONFIRMED turns it into DOWNLOAD_AND_INSTALL
    let (s1, a1) = assign(&app, &fw, json!({"devices": ["thing-7"]})).await;
    let confirm = gw.expect("CONFIRM").await;
    assert_eq!(confirm.json()["actionId"], json!(a1));
    gw.status(a1, "RUNNING", "k-0").await; // not before consent: dead-lettered
    gw.status(a1, "CONFIRMED", "k-1").await;
    assert_eq!(gw.expect("DOWNLOAD_AND_INSTALL").await.json()["actionId"], json!(a1));
    gw.status(a1, "FINISHED", "k-2").await;
    app.wait_for_state(&s1, &["success"]).await;
    assert_eq!(gw.dead_letters().await.len(), 1);

    // auto-confirm on: the next action goes out for installation at once
    let h = [("type", "EVENT"), ("tenant", "P1"), ("topic", "UPDATE_AUTO_CONFIRM"), ("thingId", "thing-7")];
    gw.send(&h, None, json!({"enabled": true, "initiator": "gw"}).to_string().as_bytes()).await;
    ping(&mut gw, "p-1").await;
    let (_, a2) = assign(&app, &fw, json!({"devices": ["thing-7"]})).await;
    assert_eq!(gw.expect("DOWNLOAD_AND_INSTALL").await.json()["actionId"], json!(a2));

    // a thing whose reply exchange does not exist: the door stays up, the message waits in
    // the outbox and arrives once the gateway declared its exchange
    app.patch("/api/v1/products/P1", json!({"ddi": {"confirmation_required": false}})).await.expect(200);
    let h = [("type", "THING_CREATED"), ("tenant", "P1"), ("thingId", "thing-8")];
    gw.send_with(&h, None, Some("application/json"), Some("gw.late"), br#"{"type": "CAFEBABE"}"#).await;
    ping(&mut gw, "p-2").await;
    let (s8, a8) = assign(&app, &fw, json!({"devices": ["thing-8"]})).await;
    app.wait_for_state(&s8, &["created"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a few refused attempts
    ping(&mut gw, "p-3").await;
    let mut late = Gateway::connect(&vhost.url, "gw.late").await;
    let m = late.expect("DOWNLOAD_AND_INSTALL").await;
    assert_eq!((m.headers["thingId"].as_str(), m.json()["actionId"].clone()), ("thing-8", json!(a8)));
}

async fn a_clashing_topology_is_named(backend: Backend) {
    let vhost = Vhost::create();
    // someone declared the receiver exchange as a direct exchange before
    let conn = Connection::connect(&vhost.url, ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare("dmf.exchange".into(), ExchangeKind::Direct, durable, FieldTable::default()).await.unwrap();
    let url = vhost.url.clone();
    let app = TestApp::spawn_with(backend, move |s| s.amqp_url = Some(devicehub::settings::Secret::new(url))).await;
    let deadline = std::time::Instant::now() + WAIT;
    let said = loop {
        let r = app.get("/readyz").await;
        let link = r.body["amqp"].as_str().unwrap_or_default().to_owned();
        if link.contains("dmf.exchange") {
            assert_eq!(r.status, 200, "HTTP still serves: {}", r.body);
            break link;
        }
        assert!(std::time::Instant::now() < deadline, "the clash was never reported: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(said.contains("receiver exchange") && said.contains("dmf_exchange"), "{said}");
    // once the stale exchange is gone, the door declares its own and links up
    ch.exchange_delete("dmf.exchange".into(), lapin::options::ExchangeDeleteOptions::default()).await.unwrap();
    wait_linked(&app).await;
}

/// The target token DMF hands out is kept sealed, never in plaintext, and a key rotation
/// (`devicehub reseal`) keeps it readable. Needs no broker.
mod sealed_tokens {
    use std::sync::Arc;

    use devicehub::service::sealing::{self, Sealer};
    use devicehub::settings::Secret;
    use serde_json::json;

    use crate::helpers::{Backend, TestApp};

    crate::on_both_backends!(target_tokens_are_sealed_and_survive_a_key_rotation);

    async fn token_of(app: &TestApp, id: &str) -> (String, Option<String>) {
        let id = id.to_owned();
        let hub = app.hub.clone();
        app.hub
            .db
            .run(move |conn| {
                let d = devicehub::db::device::find(conn, &id)?.expect("the device");
                let sealed = d.target_token_sealed.clone();
                Ok((devicehub::service::devices::target_token(conn, &hub, &d)?, sealed))
            })
            .await
            .unwrap()
    }

    async fn target_tokens_are_sealed_and_survive_a_key_rotation(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.seed_catalog().await;
        let made = app.post("/api/v1/devices", json!({"device_id": "d-1", "product": "P1"})).await.expect(201);
        let (id, token) = (made.id(), made.body["target_token"].as_str().unwrap().to_owned());
        let (opened, sealed) = token_of(&app, &id).await;
        assert_eq!(opened, token);
        let sealed = sealed.expect("kept sealed");
        assert!(sealed.starts_with("dh1:") && !sealed.contains(&token), "not in plaintext: {sealed}");

        // a new key first, the old one after it: reseal moves the token over
        let old = std::fs::read_to_string(app.env.dir.path().join("sealing.key")).unwrap();
        let old = old.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().trim().to_owned();
        let new = Sealer::generate_key();
        let env = app.stop().await;
        let app = TestApp::start(env, |s| s.sealing_key = Some(Secret::new(format!("{new},{old}")))).await;
        let sealer = Arc::new(Sealer::from_hex_keys(&[new.as_str(), old.as_str()]).unwrap());
        let done = sealing::reseal_everything(&app.hub.db, sealer).await.unwrap();
        assert!(done.values >= 2, "the canary and the token: {done:?}");
        let env = app.stop().await;
        let app = TestApp::start(env, |s| s.sealing_key = Some(Secret::new(new.clone()))).await;
        let (opened, resealed) = token_of(&app, &id).await;
        assert_eq!(opened, token, "the new key alone opens the token");
        assert_ne!(resealed.as_deref(), Some(sealed.as_str()));

        // a device whose token exists only as a hash (DDI plug-and-play, older rows) gets a new
        // one the first time DMF needs it; the old hash stops working
        let legacy = app.post("/api/v1/devices", json!({"device_id": "d-2", "product": "P1"})).await.expect(201);
        let legacy_id = legacy.id();
        let lid = legacy_id.clone();
        app.hub
            .db
            .run(move |conn| {
                let changes =
                    devicehub::db::device::DeviceChanges { target_token_sealed: Some(None), ..Default::default() };
                Ok(devicehub::db::device::update(conn, &lid, &changes)?)
            })
            .await
            .unwrap();
        let (issued, now_sealed) = token_of(&app, &legacy_id).await;
        assert_ne!(issued, legacy.body["target_token"].as_str().unwrap());
        assert!(now_sealed.is_none(), "read before the new token was stored");
        assert_eq!(token_of(&app, &legacy_id).await.0, issued, "issued once, then kept");
    }
}
