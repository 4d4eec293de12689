//! The outbox: a notice recorded in a transaction is delivered after it commits, at least
//! once and with a stable id; a rolled-back transaction (or a refused transition) delivers
//! nothing.

use std::sync::{Arc, Mutex};

use devicehub::db::write_transaction;
use devicehub::domain::session::Event;
use devicehub::error::{Error, Result};
use devicehub::service::outbox::{self, Courier, Notice};
use devicehub::service::session::engine::{self, Details, Limits};
use futures_util::future::BoxFuture;
use serde_json::json;

use crate::helpers::{Backend, TestApp, seed_request};

crate::on_both_backends!(notices_are_delivered_after_commit_at_least_once);

/// A door that refuses the first `fail_first` offers and remembers what it accepted.
#[derive(Default)]
struct Recorder {
    fail_first: usize,
    offers: Mutex<Vec<(String, Notice)>>,
    accepted: Mutex<Vec<(String, Notice)>>,
}

impl Courier for Recorder {
    fn deliver<'a>(&'a self, id: &'a str, notice: &'a Notice) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut offers = self.offers.lock().unwrap();
            offers.push((id.to_owned(), notice.clone()));
            if offers.len() <= self.fail_first {
                return Err(Error::Unavailable("the door is down".into()));
            }
            self.accepted.lock().unwrap().push((id.to_owned(), notice.clone()));
            Ok(())
        })
    }
}

fn notice(topic: &str, session: Option<&str>) -> Notice {
    Notice { door: "test".into(), session: session.map(str::to_owned), topic: topic.into(), body: json!({"n": 1}) }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn notices_are_delivered_after_commit_at_least_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let door = Arc::new(Recorder { fail_first: 2, ..Recorder::default() });
    app.hub.couriers.register("test", door.clone());

    // a rolled-back transaction records nothing; a committed one is delivered, after two
    // refused offers, with the same id each time
    let rolled_back: Result<()> = app
        .hub
        .db
        .run(|conn| {
            write_transaction(conn, |conn| {
                outbox::record(conn, notice("ROLLED_BACK", None), devicehub::time::now())?;
                Err(Error::invalid("changed my mind"))
            })
        })
        .await;
    assert!(rolled_back.is_err());
    app.hub
        .db
        .run(|conn| {
            write_transaction(conn, |conn| outbox::record(conn, notice("COMMITTED", None), devicehub::time::now()))
        })
        .await
        .unwrap();
    wait_until("the committed notice is accepted", || !door.accepted.lock().unwrap().is_empty()).await;
    let offers = door.offers.lock().unwrap().clone();
    assert_eq!(offers.len(), 3, "two refusals, then accepted: {offers:?}");
    assert!(offers.iter().all(|(id, n)| *id == offers[0].0 && n.topic == "COMMITTED"), "{offers:?}");

    // a transition records its notices in its own transaction; a refused one records none
    app.seed_catalog().await;
    app.firmware("1.0.0", vec![7; 1000], true).await;
    let id = app.request_update(seed_request("0.1.0")).await.expect(201).id();
    let limits = Limits::of(&app.hub);
    let (sid, sid2) = (id.clone(), id.clone());
    let refused = app
        .hub
        .db
        .run(move |conn| {
            let details = || Details { notices: vec![notice("REFUSED", Some(&sid))], ..Details::default() };
            engine::act(conn, &limits, &sid, Event::Confirm { success: true }, |_| Ok(()), details)
        })
        .await;
    assert!(matches!(refused, Err(Error::Conflict { code: "session_state", .. })), "{refused:?}");
    app.hub
        .db
        .run(move |conn| {
            let details = || Details { notices: vec![notice("STARTED", Some(&sid2))], ..Details::default() };
            engine::act(conn, &limits, &sid2, Event::Start, |_| Ok(()), details)
        })
        .await
        .unwrap();
    wait_until("the transition's notice is accepted", || door.accepted.lock().unwrap().len() == 2).await;
    // give a stray notice time to show up, then check there was none
    app.wait_for_state(&id, &["created"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let topics: Vec<String> = door.accepted.lock().unwrap().iter().map(|(_, n)| n.topic.clone()).collect();
    assert_eq!(topics, ["COMMITTED", "STARTED"]);
    assert_eq!(door.accepted.lock().unwrap()[1].1.session.as_deref(), Some(id.as_str()));
}
