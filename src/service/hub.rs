//! The hub: what every door and worker shares: the database, the object store, the settings, and the public
//! base URL for links. Cheap to clone; holds no state another instance would need.

use std::sync::Arc;

use tokio::sync::Notify;
use url::Url;

use super::ddi::ArtifactDownload;
use super::links::LinkSigner;
use super::outbox::Couriers;
use super::readiness::BrokerLink;
use super::recent::Recent;
use super::sealing::Sealer;
use crate::db::Db;
use crate::settings::Settings;
use crate::storage::{Blob, Storage};

#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    /// Base of links handed out, always ending in `/`.
    pub public_url: Url,
    /// Signs and checks download links.
    pub links: LinkSigner,
    /// Poked when a job is enqueued, so local workers start at once; workers of other
    /// instances find it on their next poll.
    pub jobs_ready: Arc<Notify>,
    /// The doors this process can deliver outbox notices to.
    pub couriers: Couriers,
    /// The DMF door's broker link, for `/readyz` (unset while AMQP is off).
    pub broker: BrokerLink,
    /// Seals secrets the database keeps (`service::sealing`).
    pub sealer: Arc<Sealer>,
    /// Download links checked a moment ago (a device's ranges ask again and again): the
    /// object, and when the link expires (Unix seconds).
    pub recent_downloads: Arc<Recent<((Blob, String), i64)>>,
    /// hawkBit artifact downloads checked a moment ago, by device, file and credential.
    pub recent_artifacts: Arc<Recent<ArtifactDownload>>,
    /// Bytes served by range requests, not written yet (`service::tally`).
    pub tally: Arc<super::tally::Tally>,
}

impl Hub {
    /// An absolute link to `path` (without a leading `/`) under the public URL.
    pub fn link(&self, path: &str) -> String {
        let mut base = self.public_url.as_str().to_owned();
        base.push_str(path.trim_start_matches('/'));
        base
    }
}
