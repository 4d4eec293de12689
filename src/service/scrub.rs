//! Integrity, re-checked (issue 9, defect 2). Downloads serve stored bytes with the digests
//! recorded when they were written and never re-hash them (that would cost every download a
//! full read). Instead the scrub re-reads every stored firmware image and pipeline output in
//! the background, rate-limited (`scrub_bytes_per_sec`), once per `scrub_interval_secs`, and
//! `devicehub scrub` does a full pass on demand. Work is claimed per object with a lease (the
//! `object_checks` rows), so instances share it and never hash one object twice at once.
//!
//! An object whose size or SHA-256 no longer matches — or that is missing — is quarantined,
//! durably (the row keeps the time and what was found):
//! - every door refuses it with `503 object_quarantined` ([`refuse_quarantined`]), never the
//!   wrong bytes;
//! - a pipeline output's cache rows are dropped, so the next session's run makes it anew, and
//!   the `created` sessions that were told its digests fail with a reason naming it (their
//!   devices ask again and get the new one);
//! - a firmware image cannot be made anew: sessions about to read it (`queued`, `processing`)
//!   fail with a reason, and new sessions and assignments for that firmware are refused
//!   until an operator restores the bytes;
//! - the scrub logs it at error level with both digests, and `/readyz` counts it.
//!
//! A quarantined object stays due like any other: once a check finds the recorded bytes again
//! (an operator restored them from a backup), the quarantine is lifted.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::session::engine::{self, Details, Limits};
use crate::db::object_check::{Found, ObjectCheck};
use crate::db::session::Relying;
use crate::db::{self, AnyConnection, write_transaction_retrying};
use crate::domain::session::Event;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

/// How long an object whose check failed (the store did not answer) waits before it is
/// tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// An object that did not match: what was recorded and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: String,
    pub size: i64,
    pub sha256: String,
    /// `None`: the object is missing.
    pub found: Option<Found>,
}

impl Finding {
    fn of(row: &ObjectCheck, found: Option<Found>) -> Finding {
        Finding { key: row.object_key.clone(), size: row.size, sha256: row.sha256.clone(), found }
    }

    /// The recorded and the found digests, in words (without the key: devices read this).
    pub fn digests(&self) -> String {
        let found = match &self.found {
            Some(f) => format!("found {} bytes, SHA-256 {}", f.size, f.sha256),
            None => "found nothing: the object is missing".to_owned(),
        };
        format!("recorded {} bytes, SHA-256 {}; {found}", self.size, self.sha256)
    }
}

/// What a pass of the scrub did.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects read and compared.
    pub checked: usize,
    pub bytes: u64,
    /// Objects that do not match (newly or still quarantined).
    pub quarantined: Vec<Finding>,
    /// Quarantined objects found right again: the quarantine is lifted.
    pub restored: Vec<String>,
    /// Objects that could not be read (tried again later), with the error.
    pub failed: Vec<(String, String)>,
}

/// What one check ended in.
enum Outcome {
    Intact,
    Restored,
    Quarantined,
    /// Nothing refers to the object any more (a replaced image, a deleted firmware).
    Forgotten,
    /// Another scrubber holds the object now.
    Lost,
}

fn lease_length(hub: &Hub) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(hub.settings.job_lease_secs).unwrap_or(30))
}

/// Checks every object last checked before `due_before` (or never), one at a time, until
/// none is left that no other scrubber holds. Rows for new objects are added first.
pub async fn pass(hub: &Hub, owner: &str, due_before: NaiveDateTime, bytes_per_sec: u64) -> Result<Report> {
    hub.db.run(|conn| write_transaction_retrying(conn, |conn| Ok(db::object_check::sync(conn, time::now())?))).await?;
    let mut report = Report::default();
    loop {
        let (owner_c, lease) = (owner.to_owned(), lease_length(hub));
        let claimed = hub
            .db
            .run(move |conn| {
                write_transaction_retrying(conn, |conn| {
                    let now = time::now();
                    Ok(db::object_check::claim(conn, &owner_c, now, due_before, now + lease)?)
                })
            })
            .await?;
        let Some(row) = claimed else { return Ok(report) };
        check(hub, owner, row, bytes_per_sec, &mut report).await;
    }
}

/// `devicehub scrub`: checks everything now, at the configured rate.
pub async fn everything(hub: &Hub) -> Result<Report> {
    let owner = format!("scrub-{}", uuid::Uuid::new_v4().simple());
    pass(hub, &owner, time::now(), hub.settings.scrub_bytes_per_sec).await
}

async fn check(hub: &Hub, owner: &str, row: ObjectCheck, bytes_per_sec: u64, report: &mut Report) {
    let key = row.object_key.clone();
    let digest = tokio::select! {
        r = hub.storage.digest(&key, bytes_per_sec) => r,
        () = keep_lease(hub, &key, owner) => {
            tracing::warn!(key = %key, "lost the lease of an integrity check; another scrubber has it");
            return;
        }
    };
    let found = match digest {
        Ok(found) => found.map(|(size, sha256)| Found { size: i64::try_from(size).unwrap_or(i64::MAX), sha256 }),
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "an integrity check could not read the object; it is tried again later");
            report.failed.push((key.clone(), e.to_string()));
            let (owner, until) =
                (owner.to_owned(), time::now() + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default());
            let postponed = hub.db.run(move |conn| Ok(db::object_check::postpone(conn, &key, &owner, until)?)).await;
            if let Err(e) = postponed {
                tracing::warn!(error = %e, "postponing an integrity check failed");
            }
            return;
        }
    };
    let finding = Finding::of(&row, found.clone());
    let limits = Limits::of(hub);
    let (owner_c, finding_c) = (owner.to_owned(), finding.clone());
    let recorded = hub
        .db
        .run(move |conn| write_transaction_retrying(conn, |conn| record(conn, &limits, &owner_c, &row, &finding_c)))
        .await;
    match recorded {
        Ok(outcome) => {
            if !matches!(outcome, Outcome::Lost | Outcome::Forgotten) {
                report.checked += 1;
                report.bytes += found.map_or(0, |f| u64::try_from(f.size).unwrap_or_default());
            }
            match outcome {
                Outcome::Restored => report.restored.push(finding.key),
                Outcome::Quarantined => report.quarantined.push(finding),
                Outcome::Intact | Outcome::Forgotten | Outcome::Lost => {}
            }
        }
        Err(e) => {
            tracing::warn!(key = %finding.key, error = %e, "recording an integrity check failed");
            report.failed.push((finding.key, e.to_string()));
        }
    }
}

/// Renews a check's lease every third of its length; returns when it was lost.
async fn keep_lease(hub: &Hub, key: &str, owner: &str) {
    let every = Duration::from_millis(hub.settings.job_lease_secs * 1000 / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let (key, owner, until) = (key.to_owned(), owner.to_owned(), time::now() + lease_length(hub));
        match hub.db.run(move |conn| Ok(db::object_check::heartbeat(conn, &key, &owner, until)?)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "renewing an integrity check's lease failed"),
        }
    }
}

/// Records what a check found, with its consequences, in one transaction.
fn record(
    conn: &mut AnyConnection,
    limits: &Limits,
    owner: &str,
    row: &ObjectCheck,
    finding: &Finding,
) -> Result<Outcome> {
    let now = time::now();
    let key = &row.object_key;
    let intact = finding.found.as_ref().is_some_and(|f| f.size == row.size && f.sha256 == row.sha256);
    if intact {
        if !db::object_check::finish(conn, key, owner, now, finding.found.as_ref(), None)? {
            return Ok(Outcome::Lost);
        }
        if row.quarantined_at.is_some() {
            tracing::warn!(key = %key, sha256 = %row.sha256, "a quarantined object matches its recorded digests again: quarantine lifted");
            return Ok(Outcome::Restored);
        }
        return Ok(Outcome::Intact);
    }
    if !db::object_check::is_referenced(conn, key)? {
        // replaced or deleted while it was read: nothing relies on it
        db::object_check::delete(conn, key)?;
        return Ok(Outcome::Forgotten);
    }
    let since = row.quarantined_at.unwrap_or(now);
    if !db::object_check::finish(conn, key, owner, now, finding.found.as_ref(), Some(since))? {
        return Ok(Outcome::Lost);
    }
    if row.quarantined_at.is_none() {
        tracing::error!(
            key = %key,
            recorded_size = row.size,
            recorded_sha256 = %row.sha256,
            found_size = finding.found.as_ref().map(|f| f.size),
            found_sha256 = finding.found.as_ref().map(|f| f.sha256.as_str()),
            "a stored object no longer matches its recorded digests: quarantined, it is not served"
        );
        quarantine(conn, limits, finding, now)?;
    }
    Ok(Outcome::Quarantined)
}

/// What a new quarantine does to the rows that rely on the object.
fn quarantine(conn: &mut AnyConnection, limits: &Limits, finding: &Finding, now: NaiveDateTime) -> Result<()> {
    let key = &finding.key;
    let dropped = db::artifact::delete_by_object_key(conn, key)?;
    if dropped > 0 {
        tracing::info!(key = %key, outputs = dropped, "quarantined pipeline outputs are forgotten: the next run makes them anew");
    }
    let told = format!(
        "integrity: the deliverable was quarantined, its stored bytes no longer match the digests the device was \
         told ({}); ask for the update again to get it prepared anew",
        finding.digests()
    );
    for s in db::session::live_relying(conn, Relying::OnDeliverable(key), &["created"])? {
        fail(conn, limits, &s, &told, now)?;
    }
    for f in db::firmware::with_object_key(conn, key)? {
        let why = format!(
            "integrity: the image of firmware {} was quarantined, its stored bytes no longer match ({}); an \
             operator must restore it",
            f.version,
            finding.digests()
        );
        for s in db::session::live_relying(conn, Relying::OnTarget(&f.id), &["queued", "processing"])? {
            fail(conn, limits, &s, &why, now)?;
        }
    }
    Ok(())
}

fn fail(
    conn: &mut AnyConnection,
    limits: &Limits,
    s: &db::session::Session,
    why: &str,
    now: NaiveDateTime,
) -> Result<()> {
    match engine::apply(conn, limits, s, Event::Corrupted, now, Details::because(why)) {
        // moved on meanwhile (confirmed, canceled): nothing to fail any more
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses to serve a quarantined object (`503 object_quarantined`); every door's download
/// asks this before it serves `key`.
pub fn refuse_quarantined(conn: &mut AnyConnection, key: &str) -> Result<()> {
    match db::object_check::quarantined(conn, key)? {
        Some(row) => Err(Error::Quarantined(format!(
            "the stored bytes were quarantined on {}: they no longer match the digests recorded when they were \
             written ({}); they are not served",
            row.quarantined_at.map(|t| time::to_rfc3339(&t)).unwrap_or_default(),
            Finding::of(&row, found_of(&row)).digests()
        ))),
        None => Ok(()),
    }
}

/// Refuses a firmware whose image is quarantined as the target of a new session or assignment.
pub fn refuse_quarantined_image(conn: &mut AnyConnection, f: &db::firmware::Firmware) -> Result<()> {
    let Some(key) = &f.object_key else { return Ok(()) };
    refuse_quarantined(conn, key).map_err(|e| match e {
        Error::Quarantined(why) => Error::Quarantined(format!(
            "the image of firmware {} cannot be used until an operator restores it: {why}",
            f.version
        )),
        other => other,
    })
}

fn found_of(row: &ObjectCheck) -> Option<Found> {
    match (row.found_size, &row.found_sha256) {
        (Some(size), Some(sha256)) => Some(Found { size, sha256: sha256.clone() }),
        _ => None,
    }
}

/// `/readyz`'s `integrity`: how many objects are quarantined, and when the last check ended.
#[derive(Debug, Serialize)]
pub struct Integrity {
    pub quarantined: i64,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub last_scrub: Option<NaiveDateTime>,
}

pub async fn integrity(hub: &Hub) -> Result<Integrity> {
    let (quarantined, last_scrub) = hub.db.run(|conn| Ok(db::object_check::summary(conn)?)).await?;
    Ok(Integrity { quarantined, last_scrub })
}
