//! Firmware versions are semver. Uploads must give a strict version; what devices report
//! as their current version is read leniently (`v1.2`, `1.2` → `1.2.0`), because
//! bootloaders in the field were not written with semver in mind.

use std::fmt;
use std::str::FromStr;

use semver::Version;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FirmwareVersion(Version);

impl FirmwareVersion {
    /// Strict semver, as required for firmware an admin creates.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Version::parse(raw.trim())
            .map(FirmwareVersion)
            .map_err(|e| Error::invalid(format!("{field}: {raw:?} is not a semantic version ({e})")))
    }

    /// Lenient: a leading `v`, and missing minor/patch parts, are accepted.
    pub fn parse_lenient(field: &str, raw: &str) -> Result<Self> {
        let trimmed = raw.trim();
        let bare = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
        if let Ok(v) = Version::parse(bare) {
            return Ok(FirmwareVersion(v));
        }
        // Pad `1` / `1.2` (optionally followed by `-pre` or `+build`) to three parts.
        let split_at = bare.find(['-', '+']).unwrap_or(bare.len());
        let (core, rest) = bare.split_at(split_at);
        let parts: Vec<&str> = core.split('.').collect();
        if (1..=2).contains(&parts.len())
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            let padded = format!("{}{}{rest}", core, ".0".repeat(3 - parts.len()));
            if let Ok(v) = Version::parse(&padded) {
                return Ok(FirmwareVersion(v));
            }
        }
        Err(Error::invalid(format!("{field}: {raw:?} is not a version (expected e.g. 1.2.3)")))
    }

    pub fn as_semver(&self) -> &Version {
        &self.0
    }

    /// Semver precedence (build metadata ignored), the order used to pick a target.
    pub fn is_newer_than(&self, other: &FirmwareVersion) -> bool {
        self.0.cmp_precedence(&other.0).is_gt()
    }
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for FirmwareVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        FirmwareVersion::parse("version", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_reading_pads_and_strips() {
        let v = |s| FirmwareVersion::parse_lenient("v", s).map(|v| v.to_string()).ok();
        assert_eq!(v("0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(v("v1.2").as_deref(), Some("1.2.0"));
        assert_eq!(v("3").as_deref(), Some("3.0.0"));
        assert_eq!(v("1.2-rc.1").as_deref(), Some("1.2.0-rc.1"));
        assert_eq!(v("banana"), None);
        assert_eq!(v("1..2"), None);
    }

    #[test]
    fn strict_reading_refuses_partial_versions() {
        assert!(FirmwareVersion::parse("version", "1.2").is_err());
        assert!(FirmwareVersion::parse("version", "1.2.3-beta.1").is_ok());
    }

    #[test]
    fn precedence_ignores_build_metadata() {
        let a = FirmwareVersion::parse("v", "1.0.0+a").ok();
        let b = FirmwareVersion::parse("v", "1.0.0+b").ok();
        let c = FirmwareVersion::parse("v", "1.0.1-rc.1").ok();
        let (Some(a), Some(b), Some(c)) = (a, b, c) else { panic!("parse") };
        assert!(!a.is_newer_than(&b) && !b.is_newer_than(&a));
        assert!(c.is_newer_than(&a));
    }
}
