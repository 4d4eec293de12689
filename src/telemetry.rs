//! Logging: `tracing` to stderr, pretty for people or JSON for log collectors
//! (`DEVICEHUB_LOG_FORMAT`, one object per line); `RUST_LOG` filters (default `info`).
//! Colour escape codes only when stderr is a terminal, so a file or a collector gets plain
//! text. Every HTTP request runs in a `request{id=…}` span ([`request_id`]), so each of its
//! log lines carries its id.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The id of the HTTP request being served: what the client sent as `X-Request-Id` (when it
/// is short and printable) or a new UUID v7. The edge middleware sets it for the request's
/// future ([`scope`]); [`crate::db::Db::run`] carries it onto the blocking thread that runs the
/// request's queries ([`on_thread`]), where the session engine writes it on the events.
pub mod request_id {
    use std::cell::RefCell;
    use std::future::Future;
    use std::sync::Arc;

    /// The header it travels in, both ways.
    pub const HEADER: &str = "x-request-id";
    /// Longest id taken from a client; a longer one is replaced by a new id.
    pub const MAX_LEN: usize = 128;

    tokio::task_local! {
        static CURRENT: Arc<str>;
    }

    thread_local! {
        static ON_THREAD: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    }

    /// The client's id when it is 1 to [`MAX_LEN`] visible ASCII characters, else a new one.
    pub fn accept_or_make(sent: Option<&[u8]>) -> Arc<str> {
        match sent {
            Some(b) if !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(u8::is_ascii_graphic) => {
                Arc::from(String::from_utf8_lossy(b).as_ref())
            }
            _ => Arc::from(uuid::Uuid::now_v7().to_string()),
        }
    }

    /// Runs a request's future with its id.
    pub async fn scope<F: Future>(id: Arc<str>, f: F) -> F::Output {
        CURRENT.scope(id, f).await
    }

    /// The id of the request this code runs for, if any.
    pub fn current() -> Option<Arc<str>> {
        ON_THREAD.with(|t| t.borrow().clone()).or_else(|| CURRENT.try_with(Arc::clone).ok())
    }

    /// Runs `f` on this (blocking) thread with `id` as the current request's.
    pub fn on_thread<T>(id: Option<Arc<str>>, f: impl FnOnce() -> T) -> T {
        let before = ON_THREAD.with(|t| t.replace(id));
        let out = f();
        ON_THREAD.with(|t| *t.borrow_mut() = before);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn takes_short_printable_ids_and_replaces_others() {
            assert_eq!(&*accept_or_make(Some(b"abc-123")), "abc-123");
            for bad in [&b""[..], b"has space", b"tab\there", "caf\u{e9}".as_bytes(), &[b'a'; MAX_LEN + 1]] {
                let made = accept_or_make(Some(bad));
                assert!(uuid::Uuid::parse_str(&made).is_ok(), "{bad:?} gave {made}");
            }
            assert!(uuid::Uuid::parse_str(&accept_or_make(None)).is_ok());
        }

        #[test]
        fn a_thread_sees_the_id_it_was_given_then_none() {
            assert_eq!(current(), None);
            let seen = on_thread(Some(Arc::from("r1")), current);
            assert_eq!(seen.as_deref(), Some("r1"));
            assert_eq!(current(), None);
        }
    }
}
