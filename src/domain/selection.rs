//! Which firmware a device should get: the highest released (or, when allowed, draft)
//! version of its model in its channel that is newer than what it runs; or the exact
//! version it asked for. `None` means the device is up to date.

use super::version::FirmwareVersion;

/// One firmware a device could be given.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub version: FirmwareVersion,
    pub released: bool,
    pub has_image: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The newest that is newer than the current version.
    Newest,
    /// Exactly this version (may be a downgrade; nothing if it is what the device runs).
    Exact(FirmwareVersion),
}

/// Index of the chosen candidate.
pub fn choose(
    candidates: &[Candidate],
    current: Option<&FirmwareVersion>,
    include_drafts: bool,
    target: &Target,
) -> Option<usize> {
    let eligible = candidates.iter().enumerate().filter(|(_, c)| c.has_image && (c.released || include_drafts));
    match target {
        Target::Newest => eligible
            .filter(|(_, c)| current.is_none_or(|cur| c.version.is_newer_than(cur)))
            // highest precedence; among equals prefer released, then the larger full version
            .max_by(|(_, a), (_, b)| {
                a.version
                    .as_semver()
                    .cmp_precedence(b.version.as_semver())
                    .then(a.released.cmp(&b.released))
                    .then(a.version.cmp(&b.version))
            })
            .map(|(i, _)| i),
        Target::Exact(wanted) => {
            let same = |v: &FirmwareVersion| v.as_semver().cmp_precedence(wanted.as_semver()).is_eq();
            if current.is_some_and(same) {
                return None;
            }
            eligible.filter(|(_, c)| same(&c.version)).max_by_key(|(_, c)| c.released).map(|(i, _)| i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> FirmwareVersion {
        FirmwareVersion::parse_lenient("v", s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn c(version: &str, released: bool) -> Candidate {
        Candidate { version: v(version), released, has_image: true }
    }

    #[test]
    fn newest_released_newer_than_current() {
        let cands = [c("1.0.0", true), c("1.2.0", true), c("1.10.0", true), c("2.0.0", false)];
        assert_eq!(choose(&cands, Some(&v("0.1.0")), false, &Target::Newest), Some(2), "1.10 > 1.2 by semver");
        assert_eq!(choose(&cands, Some(&v("1.10.0")), false, &Target::Newest), None, "up to date");
        assert_eq!(choose(&cands, Some(&v("1.10.0")), true, &Target::Newest), Some(3), "drafts when allowed");
        assert_eq!(choose(&cands, None, false, &Target::Newest), Some(2), "no current version: the newest");
        assert_eq!(choose(&cands, Some(&v("9.0.0")), true, &Target::Newest), None, "never a downgrade");
    }

    #[test]
    fn prereleases_order_before_their_release() {
        let cands = [c("1.0.0-rc.1", true), c("1.0.0", true)];
        assert_eq!(choose(&cands, Some(&v("0.9.0")), false, &Target::Newest), Some(1));
        assert_eq!(choose(&cands, Some(&v("1.0.0-beta")), false, &Target::Newest), Some(1));
    }

    #[test]
    fn images_are_required() {
        let cands = [Candidate { version: v("3.0.0"), released: true, has_image: false }, c("2.0.0", true)];
        assert_eq!(choose(&cands, None, true, &Target::Newest), Some(1));
    }

    #[test]
    fn exact_versions_may_downgrade_but_not_repeat() {
        let cands = [c("1.0.0", true), c("2.0.0", true), c("3.0.0", false)];
        assert_eq!(choose(&cands, Some(&v("2.0.0")), false, &Target::Exact(v("1.0.0"))), Some(0));
        assert_eq!(choose(&cands, Some(&v("2.0.0")), false, &Target::Exact(v("2.0.0"))), None);
        assert_eq!(choose(&cands, None, false, &Target::Exact(v("3.0.0"))), None, "draft without the right");
        assert_eq!(choose(&cands, None, true, &Target::Exact(v("3.0.0"))), Some(2));
        assert_eq!(choose(&cands, None, true, &Target::Exact(v("4.0.0"))), None);
    }
}
