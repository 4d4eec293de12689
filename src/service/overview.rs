//! What the admin overview shows, within what the caller may read: the installed versions
//! per product, live sessions by state, recent failures and devices gone quiet.

use std::collections::BTreeMap;

use super::devices::DeviceView;
use super::session::request::{self, SessionQuery};
use super::session::views::HistoryEntry;
use super::{Actor, ListParams};
use crate::db;
use crate::domain::rights::Action;
use crate::domain::session::State;
use crate::error::Result;
use crate::service::Hub;
use crate::time;

/// Devices not seen for this long count as quiet.
pub const QUIET_AFTER_HOURS: i64 = 24;

#[derive(Debug)]
pub struct Overview {
    pub products: Vec<ProductVersions>,
    /// Every session state, in the state machine's order, with its live sessions.
    pub sessions_by_state: Vec<(&'static str, i64)>,
    pub recent_failures: Vec<HistoryEntry>,
    pub quiet_devices: Vec<DeviceView>,
    pub quiet_total: i64,
}

/// A product's devices per installed version (`None`: not known yet), most devices first.
#[derive(Debug)]
pub struct ProductVersions {
    pub product_id: String,
    pub tid: String,
    pub name: String,
    pub versions: Vec<(Option<String>, i64)>,
}

pub async fn summary(hub: &Hub, actor: &Actor) -> Result<Overview> {
    let only = actor.products_allowing(Action::Read);
    let (products, sessions_by_state, quiet_devices, quiet_total) = hub
        .db
        .run(move |conn| {
            let only = only.as_deref();
            let (rows, _) = db::product::list(conn, only, db::Page { limit: 1000, offset: 0 })?;
            let mut per_product: BTreeMap<String, Vec<(Option<String>, i64)>> = BTreeMap::new();
            for (product, version, n) in db::overview::devices_by_version(conn, only)? {
                per_product.entry(product).or_default().push((version, n));
            }
            let products = rows
                .into_iter()
                .map(|p| {
                    let mut versions = per_product.remove(&p.id).unwrap_or_default();
                    versions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    ProductVersions { product_id: p.id, tid: p.tid, name: p.name, versions }
                })
                .collect();
            let counted = db::overview::sessions_by_state(conn, only, None)?;
            let by_state = State::ALL
                .iter()
                .map(|s| (s.as_str(), counted.iter().find(|(c, _)| c == s.as_str()).map_or(0, |(_, n)| *n)))
                .collect();
            let cutoff = time::now() - chrono::Duration::hours(QUIET_AFTER_HOURS);
            let (quiet, quiet_total) = db::overview::quiet_devices(conn, only, cutoff, 10)?;
            let quiet = quiet.into_iter().map(super::devices::view).collect();
            Ok((products, by_state, quiet, quiet_total))
        })
        .await?;
    let failures = SessionQuery {
        state: Some(State::Fail.as_str().into()),
        expired: Some("all".into()),
        list: ListParams { limit: Some(10), offset: None },
        ..Default::default()
    };
    let recent_failures = request::list(hub, actor, failures).await?.items;
    Ok(Overview { products, sessions_by_state, recent_failures, quiet_devices, quiet_total })
}

/// The sessions delivering a firmware, by state (an assignment's progress), for those who
/// may read it.
pub async fn firmware_progress(hub: &Hub, actor: &Actor, firmware: String) -> Result<Vec<(&'static str, i64)>> {
    let f = super::firmware::get(hub, actor, firmware).await?;
    let counted = hub.db.run(move |conn| Ok(db::overview::sessions_by_state(conn, None, Some(&f.id))?)).await?;
    Ok(State::ALL
        .iter()
        .map(|s| (s.as_str(), counted.iter().find(|(c, _)| c == s.as_str()).map_or(0, |(_, n)| *n)))
        .filter(|(_, n)| *n > 0)
        .collect())
}
