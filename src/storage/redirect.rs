//! Downloads straight from the store, when wanted (`DEVICEHUB_DOWNLOAD_REDIRECT`): every
//! door checks a download as always (the link, the rights, the quarantine, the conditional
//! headers and the range) and then, instead of streaming the bytes, answers `307` to
//!
//! - `presigned`: a presigned `GET` URL of the S3 object, valid for a short time
//!   (`DEVICEHUB_DOWNLOAD_REDIRECT_TTL_SECS`), so the bytes never pass through devicehub;
//! - `cdn`: `DEVICEHUB_DOWNLOAD_REDIRECT_BASE` joined with the object's key, for a CDN (or a
//!   plain web server) whose origin is the store.
//!
//! The client repeats its request, `Range` included, at the new address.

use std::time::Duration;

use anyhow::bail;
use url::Url;

use super::{Blob, Storage};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Redirect {
    /// Stream every download through devicehub (the default).
    #[default]
    Off,
    Presigned {
        ttl: Duration,
    },
    Cdn {
        base: Url,
    },
}

impl Redirect {
    /// From the settings: `off`, `presigned` or `cdn` (which needs `base`).
    pub fn parse(kind: &str, base: Option<&str>, ttl_secs: u64) -> anyhow::Result<Redirect> {
        Ok(match kind {
            "" | "off" => Redirect::Off,
            "presigned" => {
                if ttl_secs == 0 || ttl_secs > 7 * 86_400 {
                    bail!("download_redirect_ttl_secs must be 1 to 604800 (a presigned URL lives a week at most)");
                }
                Redirect::Presigned { ttl: Duration::from_secs(ttl_secs) }
            }
            "cdn" => {
                let Some(base) = base.filter(|b| !b.is_empty()) else {
                    bail!(
                        "download_redirect = \"cdn\" needs download_redirect_base (DEVICEHUB_DOWNLOAD_REDIRECT_BASE)"
                    );
                };
                let mut base = Url::parse(base).map_err(|e| anyhow::anyhow!("download_redirect_base {base:?}: {e}"))?;
                if !matches!(base.scheme(), "http" | "https") {
                    bail!("download_redirect_base must be http:// or https:// (got {base})");
                }
                if !base.path().ends_with('/') {
                    let path = format!("{}/", base.path());
                    base.set_path(&path);
                }
                Redirect::Cdn { base }
            }
            other => bail!("download_redirect must be off, presigned or cdn (got {other:?})"),
        })
    }
}

impl Storage {
    /// Sets where downloads are redirected; presigned URLs need an S3 store.
    pub fn with_redirect(mut self, redirect: Redirect) -> anyhow::Result<Storage> {
        if matches!(redirect, Redirect::Presigned { .. }) && self.s3.is_none() {
            bail!(
                "download_redirect = \"presigned\" needs an S3 object store (s3://bucket/prefix), not {}",
                self.description
            );
        }
        self.redirect = redirect;
        Ok(self)
    }

    /// Where a download of `blob` is sent instead of being streamed; `None`: stream it.
    pub async fn redirect_url(&self, blob: &Blob) -> Result<Option<Url>> {
        match (&self.redirect, &self.s3) {
            (Redirect::Off, _) => Ok(None),
            (Redirect::Presigned { ttl }, Some(s3)) => {
                Ok(Some(s3.presigned_get(&blob.key, *ttl, &blob.filename).await?))
            }
            (Redirect::Presigned { .. }, None) => Ok(None),
            (Redirect::Cdn { base }, _) => base
                .join(&blob.key)
                .map(Some)
                .map_err(|e| Error::internal(format!("joining {base} and {}: {e}", blob.key))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Redirect;

    #[test]
    fn settings_name_a_redirect() {
        assert_eq!(Redirect::parse("off", None, 300).ok(), Some(Redirect::Off));
        assert!(matches!(Redirect::parse("presigned", None, 300), Ok(Redirect::Presigned { .. })));
        assert!(Redirect::parse("presigned", None, 0).is_err());
        assert!(Redirect::parse("cdn", None, 300).is_err(), "a CDN needs a base");
        let Ok(Redirect::Cdn { base }) = Redirect::parse("cdn", Some("https://cdn.example.com/fw"), 300) else {
            panic!("a CDN base is a redirect")
        };
        assert_eq!(
            base.join("images/a/b").map(String::from).ok().as_deref(),
            Some("https://cdn.example.com/fw/images/a/b")
        );
        assert!(Redirect::parse("sometimes", None, 300).is_err());
    }
}
