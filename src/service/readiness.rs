//! What `/readyz` reports: whether the database and the object store answer, whether they
//! take writes (after a write found no space left, a small probe write decides), and the
//! integrity scrub's findings. Quarantined objects do not make an instance unready: every
//! instance shares them, so failing readiness would take the whole service away, healthy
//! objects included, while the affected downloads already answer a clear error.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::error::Result;
use crate::service::Hub;
use crate::service::scrub::{self, Integrity};

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready`, `unavailable` (the database or the store does not answer) or `storage_full`.
    pub status: &'static str,
    /// `ok`, or what is wrong.
    pub database: String,
    pub object_store: String,
    /// Quarantined objects and the last check (absent when the database does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
    /// The DMF door's broker link (`ok`, `connecting`, `reconnecting: …`); absent when AMQP
    /// is off. A broken link does not make the instance unready: HTTP devices and the admin
    /// API still work, and DMF notices wait in the outbox until the link is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp: Option<String>,
}

/// The state of the DMF door's broker link, as the door last reported it.
#[derive(Debug, Clone, Default)]
pub struct BrokerLink(Arc<RwLock<Option<String>>>);

impl BrokerLink {
    pub fn set(&self, state: impl Into<String>) {
        if let Ok(mut s) = self.0.write() {
            *s = Some(state.into());
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.read().ok().and_then(|s| s.clone())
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

pub async fn check(hub: &Hub) -> Readiness {
    let (db, store) = futures_util::join!(hub.db.ping(), hub.storage.ping());
    let (db_full, store_full) = futures_util::join!(hub.db.out_of_space(), hub.storage.out_of_space());
    let describe = |answer: &Result<()>, full: &Option<String>| match (answer, full) {
        (Err(e), _) => e.to_string(),
        (Ok(()), Some(why)) => format!("storage_full: {why}"),
        (Ok(()), None) => "ok".to_owned(),
    };
    let status = if db.is_err() || store.is_err() {
        "unavailable"
    } else if db_full.is_some() || store_full.is_some() {
        "storage_full"
    } else {
        "ready"
    };
    let integrity = match scrub::integrity(hub).await {
        Ok(integrity) => Some(integrity),
        Err(e) => {
            tracing::warn!(error = %e, "reading the integrity summary failed");
            None
        }
    };
    Readiness {
        status,
        database: describe(&db, &db_full),
        object_store: describe(&store, &store_full),
        integrity,
        amqp: hub.broker.get(),
    }
}
