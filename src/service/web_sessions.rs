//! Signing in to the web UI: a password (or, for automation users, an API token) opens a
//! browser session, a row whose random secret the cookie carries (only its SHA-256 is kept).
//! Rows rather than a signed cookie, so signing out, a changed password and a deactivated
//! user end a session at once, on every instance.
//!
//! Failed sign-ins are counted per user name and per client address, in the database so
//! every instance counts together: past a few, each further attempt has to wait, twice as
//! long each time, up to a quarter of an hour; the wait ends an hour after the last failure.

use chrono::Duration;

use super::{Actor, auth};
use crate::db::{self, write_transaction};
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

/// Failed sign-ins a user name may have before attempts are slowed down.
pub const FREE_FAILURES_PER_USER: i32 = 5;
/// … and a client address (several people may share one).
pub const FREE_FAILURES_PER_ADDRESS: i32 = 20;
/// The longest wait between attempts.
pub const MAX_WAIT_SECS: i64 = 900;
/// Failures older than this are forgotten.
pub const FORGET_AFTER_SECS: i64 = 3600;
/// `last_seen_at` is written at most this often.
const TOUCH_EVERY_SECS: i64 = 60;

/// What the sign-in form sends.
#[derive(Debug, Default)]
pub struct SignIn {
    pub username: String,
    pub password: String,
    /// An API token instead of a user name and password.
    pub token: String,
    /// The client's address, for counting failures.
    pub address: Option<String>,
}

/// A new browser session: the cookie's secret (shown only here) and the session's CSRF token.
#[derive(Debug)]
pub struct Opened {
    pub secret: String,
    pub csrf: String,
}

/// A signed-in browser: who, and the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct Signed {
    pub actor: Actor,
    pub csrf: String,
    pub session_id: String,
}

fn subjects(input: &SignIn) -> Vec<String> {
    let mut subjects = Vec::new();
    if !input.username.is_empty() {
        subjects.push(format!("user:{}", input.username.to_lowercase()));
    }
    if let Some(a) = &input.address {
        subjects.push(format!("address:{a}"));
    }
    subjects
}

fn free_failures(subject: &str) -> i32 {
    if subject.starts_with("user:") { FREE_FAILURES_PER_USER } else { FREE_FAILURES_PER_ADDRESS }
}

/// How long to wait after `failures` failures of a subject allowed `free` ones.
fn wait_after(failures: i32, free: i32) -> Option<Duration> {
    (failures >= free).then(|| {
        let doublings = u32::try_from(failures - free + 1).unwrap_or(u32::MAX).min(20);
        Duration::seconds((1_i64 << doublings).min(MAX_WAIT_SECS))
    })
}

/// Refuses while any subject must still wait.
async fn check_throttle(hub: &Hub, subjects: Vec<String>) -> Result<()> {
    let now = time::now();
    let rows = hub.db.run(move |conn| Ok(db::web::failures_of(conn, &subjects)?)).await?;
    let wait = rows
        .iter()
        .filter(|r| now - r.last_failure_at < Duration::seconds(FORGET_AFTER_SECS))
        .filter_map(|r| r.blocked_until)
        .filter(|until| *until > now)
        .max();
    match wait {
        Some(until) => Err(Error::TooManyRequests(format!(
            "too many failed sign-ins; try again in {} seconds",
            (until - now).num_seconds().max(1)
        ))),
        None => Ok(()),
    }
}

async fn record_failure(hub: &Hub, subjects: Vec<String>) -> Result<()> {
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let now = time::now();
                let known = db::web::failures_of(conn, &subjects)?;
                for subject in &subjects {
                    let before = known
                        .iter()
                        .find(|r| &r.subject == subject)
                        .filter(|r| now - r.last_failure_at < Duration::seconds(FORGET_AFTER_SECS))
                        .map_or(0, |r| r.failures);
                    let failures = before.saturating_add(1);
                    let row = db::web::SignInFailures {
                        subject: subject.clone(),
                        failures,
                        last_failure_at: now,
                        blocked_until: wait_after(failures, free_failures(subject)).map(|w| now + w),
                    };
                    db::web::put_failures(conn, &row)?;
                }
                Ok(())
            })
        })
        .await
}

fn refused() -> Error {
    Error::Unauthorized("wrong user name or password (or the user is deactivated)".into())
}

/// Checks the credentials and opens a session; 429 while attempts must wait, 401 if wrong.
pub async fn sign_in(hub: &Hub, input: SignIn) -> Result<Opened> {
    let subjects = subjects(&input);
    check_throttle(hub, subjects.clone()).await?;
    let user_id = if !input.token.is_empty() {
        match auth::authenticate(hub, &input.token).await {
            Ok(actor) => Some(actor.user_id),
            Err(Error::Unauthorized(_)) => None,
            Err(e) => return Err(e),
        }
    } else {
        let username = input.username.clone();
        let found = hub.db.run(move |conn| Ok(db::web::active_user_with_password(conn, &username)?)).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let ok = auth::verify_password_async(input.password.clone(), hash).await;
        user.filter(|_| ok).map(|u| u.id)
    };
    let Some(user_id) = user_id else {
        record_failure(hub, subjects).await?;
        return Err(refused());
    };
    let secret = auth::generate_token();
    let csrf = auth::generate_token();
    let idle = Duration::seconds(i64::try_from(hub.settings.ui_idle_secs).unwrap_or(1800));
    let max = Duration::seconds(i64::try_from(hub.settings.ui_session_max_secs).unwrap_or(43_200));
    let user_subject = (!input.username.is_empty()).then(|| format!("user:{}", input.username.to_lowercase()));
    let row_secret = secret.clone();
    let row_csrf = csrf.clone();
    hub.db
        .run(move |conn| {
            let now = time::now();
            db::web::delete_dead_sessions(conn, now, now - idle)?;
            if let Some(subject) = &user_subject {
                db::web::clear_failures(conn, subject)?;
            }
            let row = db::web::WebSession {
                id: uuid::Uuid::new_v4().to_string(),
                token_hash: auth::hash_token(&row_secret),
                user_id,
                csrf_token: row_csrf,
                created_at: now,
                last_seen_at: now,
                expires_at: now + max,
            };
            db::web::insert(conn, &row)?;
            Ok(())
        })
        .await?;
    Ok(Opened { secret, csrf })
}

/// The signed-in browser a cookie's secret names; 401 if none (unknown, signed out, idle
/// too long, past its end, or the user deactivated). `active`: this request counts as the
/// user's activity (a page's own background refresh does not).
pub async fn authenticate(hub: &Hub, secret: String, active: bool) -> Result<Signed> {
    let idle = Duration::seconds(i64::try_from(hub.settings.ui_idle_secs).unwrap_or(1800));
    hub.db
        .run(move |conn| {
            let now = time::now();
            let (session, user) = db::web::find_live_session(conn, &auth::hash_token(&secret), now, now - idle)?
                .ok_or_else(|| Error::Unauthorized("sign in again: the session is over".into()))?;
            if active && now - session.last_seen_at > Duration::seconds(TOUCH_EVERY_SECS) {
                db::web::touch_session(conn, &session.id, now)?;
            }
            let grants = auth::load_grants(conn, &user.id)?;
            Ok(Signed {
                actor: Actor { user_id: user.id, username: user.username, grants },
                csrf: session.csrf_token,
                session_id: session.id,
            })
        })
        .await
}

/// Ends the session a cookie's secret names (nothing if there is none).
pub async fn sign_out(hub: &Hub, secret: String) -> Result<()> {
    hub.db.run(move |conn| Ok(db::web::delete_session_by_hash(conn, &auth::hash_token(&secret)).map(drop)?)).await
}

/// Compares a CSRF token sent with a form to the session's, in constant time.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_quarter_hour() {
        assert_eq!(wait_after(4, 5), None);
        assert_eq!(wait_after(5, 5), Some(Duration::seconds(2)));
        assert_eq!(wait_after(6, 5), Some(Duration::seconds(4)));
        assert_eq!(wait_after(30, 5), Some(Duration::seconds(MAX_WAIT_SECS)));
        assert_eq!(wait_after(i32::MAX, 5), Some(Duration::seconds(MAX_WAIT_SECS)));
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
    }
}
