//! Orphans: what a crash leaves in the object store. A process killed during an upload or a
//! pipeline step leaves the staging file of its unfinished write (`<key>#<n>` on a local
//! store), and one killed between finishing an object and recording it leaves a whole object
//! that no row refers to. Both are removed once older than the grace period
//! (`orphan_grace_secs`), at start-up and then periodically; an upload or a pipeline run in
//! flight is younger than that, and never touched. Several instances may sweep at once:
//! removing a removed file is harmless.

use std::collections::HashSet;
use std::time::Duration;

use crate::db::{self, AnyConnection};
use crate::error::Result;
use crate::service::Hub;
use crate::storage::keys;
use crate::time;

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub staging_files: usize,
    pub objects: usize,
    /// Pipeline outputs no live session used any more.
    pub outputs: usize,
}

/// Every object key a row refers to: firmware images, recorded pipeline outputs, and the
/// deliverables live sessions hold.
fn referenced(conn: &mut AnyConnection) -> Result<HashSet<String>> {
    let mut keys: HashSet<String> = db::firmware::object_keys(conn)?.into_iter().collect();
    keys.extend(db::artifact::object_keys(conn)?);
    keys.extend(db::session::artifact_keys(conn)?);
    Ok(keys)
}

/// Forgets the pipeline outputs recorded before `cutoff` that no live session refers to, and
/// deletes their objects: a later identical request makes them again. (A session that ended
/// or expired never serves its deliverable again; the grace period keeps outputs that are
/// reused often.) Objects of firmware images, which an `image`-only procedure's output may
/// name, are never touched.
async fn sweep_outputs(hub: &Hub, cutoff: chrono::NaiveDateTime) -> Result<usize> {
    let doomed = hub
        .db
        .run(move |conn| {
            let live: HashSet<String> = db::session::artifact_keys(conn)?.into_iter().collect();
            let mut doomed = Vec::new();
            for row in db::artifact::recorded_before(conn, cutoff)? {
                if live.contains(&row.object_key) {
                    continue;
                }
                db::artifact::delete(conn, &row.cache_key)?;
                doomed.push(row.object_key);
            }
            // an object another output row or a firmware still names stays
            let kept = referenced(conn)?;
            doomed.retain(|k| k.starts_with("artifacts/") && !kept.contains(k));
            doomed.sort();
            doomed.dedup();
            Ok(doomed)
        })
        .await?;
    for key in &doomed {
        hub.storage.delete(key).await?;
        tracing::info!(key = %key, "removed a pipeline output no live session uses");
    }
    Ok(doomed.len())
}

pub async fn sweep(hub: &Hub) -> Result<Swept> {
    let grace = Duration::from_secs(hub.settings.orphan_grace_secs);
    let staging = hub.storage.sweep_staging(grace).await?;
    for file in &staging {
        tracing::info!(file = %file, "removed the staging file of a write that never finished");
    }
    let cutoff = time::now() - chrono::Duration::seconds(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 1000));
    let mut old = Vec::new();
    for prefix in keys::OBJECT_PREFIXES {
        old.extend(hub.storage.list(prefix).await?.into_iter().filter(|o| o.modified < cutoff));
    }
    let outputs = sweep_outputs(hub, cutoff).await?;
    let mut objects = 0;
    if !old.is_empty() {
        // listed first, then the rows: an object recorded meanwhile is in this answer
        let referenced = hub.db.run(referenced).await?;
        for orphan in old.into_iter().filter(|o| !referenced.contains(&o.key)) {
            hub.storage.delete(&orphan.key).await?;
            tracing::info!(key = %orphan.key, size = orphan.size, modified = %orphan.modified, "removed an object no row refers to");
            objects += 1;
        }
    }
    Ok(Swept { staging_files: staging.len(), objects, outputs })
}
