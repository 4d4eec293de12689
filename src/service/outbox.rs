//! The outbox: a transition records "tell door X about session Y" ([`Notice`]) in its own
//! transaction, as a `Deliver` job, so a notice exists exactly when the change it reports
//! committed (never for a rolled-back one). A worker hands it to the door's [`Courier`]
//! after commit and keeps retrying with back-off until the courier accepts it: delivery is
//! at least once. Each notice carries a stable id (its job's), so a receiver recognises a
//! repeat: delivery is idempotent. DMF uses it first; a webhook door would be one more
//! courier.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::NaiveDateTime;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jobs::{self, Job, Lease};
use crate::db::{AnyConnection, write_transaction_retrying};
use crate::error::Result;
use crate::service::Hub;

/// How often a notice is offered before it is given up (with back-off capped at a minute:
/// about 16 hours of a door being unreachable).
pub const DELIVERY_ATTEMPTS: u32 = 1000;

/// A message for one door about one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The courier's name, e.g. `dmf`.
    pub door: String,
    pub session: Option<String>,
    /// What happened, in the door's words (e.g. `DOWNLOAD_AND_INSTALL`).
    pub topic: String,
    #[serde(default)]
    pub body: Value,
}

/// Records a notice in the caller's transaction.
pub fn record(conn: &mut AnyConnection, notice: Notice, at: NaiveDateTime) -> Result<()> {
    jobs::enqueue(conn, &Job::Deliver(notice), at, DELIVERY_ATTEMPTS)
}

/// A door that can deliver notices.
pub trait Courier: Send + Sync {
    /// Delivers one notice; `id` is the same each time the same notice is offered again.
    fn deliver<'a>(&'a self, id: &'a str, notice: &'a Notice) -> BoxFuture<'a, Result<()>>;
}

/// The couriers this process runs, by door name.
#[derive(Clone, Default)]
pub struct Couriers(Arc<RwLock<HashMap<String, Arc<dyn Courier>>>>);

impl Couriers {
    pub fn register(&self, door: &str, courier: Arc<dyn Courier>) {
        if let Ok(mut map) = self.0.write() {
            map.insert(door.to_owned(), courier);
        }
    }

    fn get(&self, door: &str) -> Option<Arc<dyn Courier>> {
        self.0.read().ok().and_then(|map| map.get(door).cloned())
    }
}

/// A claimed notice.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub lease: Lease,
    pub notice: Notice,
}

/// Offers a claimed notice to its door; done when the courier accepted it, else tried again
/// later. A process without that door (e.g. AMQP off here) leaves it to one that has it.
pub async fn deliver(hub: &Hub, delivery: &Delivery) {
    let notice = &delivery.notice;
    let outcome = match hub.couriers.get(&notice.door) {
        Some(courier) => courier.deliver(&delivery.lease.job_id, notice).await.map_err(|e| e.to_string()),
        None => Err(format!("no courier for door {:?} in this process", notice.door)),
    };
    if let Err(error) = &outcome {
        tracing::warn!(job = %delivery.lease.job_id, door = %notice.door, attempt = delivery.lease.attempt, %error, "a notice was not delivered; it will be offered again");
    }
    let lease = delivery.lease.clone();
    let base = hub.settings.poll_interval_ms;
    let recorded = hub
        .db
        .run(move |conn| {
            write_transaction_retrying(conn, |conn| match &outcome {
                Ok(()) => jobs::complete(conn, &lease).map(drop),
                Err(error) if lease.attempt < lease.max_attempts => {
                    jobs::retry_later(conn, &lease, base, error).map(drop)
                }
                Err(error) => {
                    tracing::error!(job = %lease.job_id, %error, "a notice was given up after its last attempt");
                    jobs::complete(conn, &lease).map(drop)
                }
            })
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!(job = %delivery.lease.job_id, error = %e, "recording a delivery failed");
    }
}
