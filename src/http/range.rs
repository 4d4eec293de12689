//! Byte ranges (RFC 9110 §14), as a pure plan: what to send for a request's `Range` and
//! `If-Range` headers against an object of `size` bytes with strong `etag`. One range per
//! request, as seed 003 documents; several are refused clearly rather than answered in a
//! multipart body nobody in the field parses.

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200, the whole object.
    Full,
    /// 206, bytes `start..=end`.
    Partial { start: u64, end: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Not a byte-range header we can read (400).
    Malformed,
    /// More than one range (416, refused).
    Multiple,
    /// The range lies outside the object (416 with `Content-Range: bytes */size`).
    Unsatisfiable,
}

/// The longest `Range` header that is parsed. One range is at most ~50 bytes
/// (`bytes=<20 digits>-<20 digits>`); a longer header is answered without being parsed: with
/// a comma it asks for several ranges ([`RangeError::Multiple`]), without one it is
/// [`RangeError::Malformed`].
pub const MAX_RANGE_HEADER_LEN: usize = 1024;

pub fn plan(range: Option<&str>, if_range: Option<&str>, etag: &str, size: u64) -> Result<Plan, RangeError> {
    let Some(range) = range else { return Ok(Plan::Full) };
    // §13.1.5: a Range is honoured only if If-Range (when sent) matches the current entity
    // tag exactly (strong comparison). A date or a stale tag means: send it all.
    if let Some(validator) = if_range
        && validator.trim() != etag
    {
        return Ok(Plan::Full);
    }
    let range = range.trim();
    if range.len() > MAX_RANGE_HEADER_LEN {
        return Err(if range.contains(',') { RangeError::Multiple } else { RangeError::Malformed });
    }
    // A header within the bound holds fewer ranges than this, so however many it asks for,
    // the parser counts them all (its default gives up after 100) and the answer is Multiple.
    const ALL: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(MAX_RANGE_HEADER_LEN);
    use http_range_header::{RangeRejected, RangeUnsatisfiableError as E};
    let parsed = match http_range_header::parse_range_header_with_max_ranges(range, ALL) {
        Ok(parsed) => parsed,
        Err(E::Rejected(RangeRejected::TooMany)) => return Err(RangeError::Multiple),
        Err(_) => return Err(RangeError::Malformed),
    };
    use http_range_header::SyntacticallyCorrectRange as R;
    let [only] = parsed.into_ranges()[..] else { return Err(RangeError::Multiple) };
    let last = size.checked_sub(1).ok_or(RangeError::Unsatisfiable)?;
    match only {
        R::FromStart(start) if start <= last => Ok(Plan::Partial { start, end: last }),
        R::Indexed(start, end) if start <= last => Ok(Plan::Partial { start, end: end.min(last) }),
        // a suffix longer than the object means all of it (§14.1.2)
        R::FromLast(n) if n > 0 => Ok(Plan::Partial { start: size.saturating_sub(n), end: last }),
        _ => Err(RangeError::Unsatisfiable),
    }
}

impl Plan {
    /// What the plan serves of an object of `size` bytes: the byte window, and for a partial
    /// answer its `Content-Range` (`bytes 0-1/TOTAL` for `bytes=0-1`). The download code sends
    /// exactly this, so the property tests below check it against a byte vector.
    pub fn window(self, size: u64) -> (std::ops::Range<u64>, Option<String>) {
        match self {
            Plan::Full => (0..size, None),
            Plan::Partial { start, end } => (start..end.saturating_add(1), Some(format!("bytes {start}-{end}/{size}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc\"";

    fn p(range: &str, size: u64) -> Result<Plan, RangeError> {
        plan(Some(range), None, TAG, size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-1", 100), Ok(Plan::Partial { start: 0, end: 1 }), "seed 003's probe");
        assert_eq!(p("bytes=0-0", 100), Ok(Plan::Partial { start: 0, end: 0 }), "first byte");
        assert_eq!(p("bytes=99-99", 100), Ok(Plan::Partial { start: 99, end: 99 }), "last byte");
        assert_eq!(p("bytes=99-", 100), Ok(Plan::Partial { start: 99, end: 99 }));
        assert_eq!(p("bytes=-1", 100), Ok(Plan::Partial { start: 99, end: 99 }), "suffix");
        assert_eq!(p("bytes=-500", 100), Ok(Plan::Partial { start: 0, end: 99 }), "long suffix is everything");
        assert_eq!(p("bytes=90-500", 100), Ok(Plan::Partial { start: 90, end: 99 }), "end clamps");
        assert_eq!(p("BYTES=1-2", 100), Ok(Plan::Partial { start: 1, end: 2 }), "unit is case-insensitive");
    }

    #[test]
    fn unsatisfiable_and_malformed() {
        assert_eq!(p("bytes=100-", 100), Err(RangeError::Unsatisfiable), "past the end");
        assert_eq!(p("bytes=100-200", 100), Err(RangeError::Unsatisfiable));
        assert_eq!(p("bytes=-0", 100), Err(RangeError::Unsatisfiable));
        assert_eq!(p("bytes=0-0", 0), Err(RangeError::Unsatisfiable), "empty object");
        for bad in ["bytes=abc", "bytes=5-1", "items=0-1", "bytes=", "0-1", "bytes=--1"] {
            assert_eq!(p(bad, 100), Err(RangeError::Malformed), "{bad}");
        }
        assert_eq!(p("bytes=0-1,5-6", 100), Err(RangeError::Multiple));
        assert_eq!(p("bytes=0-1, 2-3, 4-5", 100), Err(RangeError::Multiple));
        // however many (the parser's own limit is 100), and past the header bound too
        for n in [10, 11, 100, 101, 300, 5000] {
            let many = (0..n).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(",");
            assert_eq!(p(&format!("bytes={many}"), 100), Err(RangeError::Multiple), "{n} ranges");
        }
        let padded = format!("bytes={}0-1", " ".repeat(MAX_RANGE_HEADER_LEN));
        assert_eq!(p(&padded, 100), Err(RangeError::Malformed));
    }

    #[test]
    fn if_range_needs_the_current_tag() {
        assert_eq!(plan(Some("bytes=0-1"), Some(TAG), TAG, 10), Ok(Plan::Partial { start: 0, end: 1 }));
        assert_eq!(plan(Some("bytes=0-1"), Some("\"stale\""), TAG, 10), Ok(Plan::Full));
        assert_eq!(plan(Some("bytes=0-1"), Some("Wed, 21 Oct 2015 07:28:00 GMT"), TAG, 10), Ok(Plan::Full));
        assert_eq!(plan(Some("bytes=0-1"), Some("W/\"abc\""), TAG, 10), Ok(Plan::Full), "weak tags never match");
        assert_eq!(plan(None, Some(TAG), TAG, 10), Ok(Plan::Full));
    }

    #[test]
    fn never_panics_and_stays_inside_the_object() {
        let headers = [
            "bytes=0-",
            "bytes=-",
            "bytes=18446744073709551615-",
            "bytes=0-18446744073709551615",
            "bytes=-18446744073709551615",
        ];
        for size in [0u64, 1, 2, 1000, u64::MAX] {
            for h in headers {
                if let Ok(Plan::Partial { start, end }) = p(h, size) {
                    assert!(start <= end && end < size, "{h} on {size}: {start}-{end}");
                }
            }
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        const TAG: &str = "\"abc\"";

        /// One well-formed range spec (numbers near the object's size, and huge ones; a
        /// reversed `b-a` is malformed, which `plans_stay_inside_the_object` covers).
        fn spec() -> impl Strategy<Value = String> {
            let n = prop_oneof![0u64..2000, any::<u64>()];
            prop_oneof![
                (n.clone(), n.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
                n.clone().prop_map(|a| format!("{a}-")),
                n.prop_map(|b| format!("-{b}")),
            ]
        }

        /// A Range header: well-formed lists of one or more specs with odd spacing and case,
        /// or anything at all.
        fn header() -> impl Strategy<Value = String> {
            prop_oneof![
                (prop::collection::vec(spec(), 1..400), "(bytes|BYTES|Bytes)=", "[ ,]?")
                    .prop_map(|(specs, unit, sep)| format!("{unit}{}", specs.join(&format!(",{sep}")))),
                any::<String>(),
                "[bytes=0-9, -]{0,40}",
            ]
        }

        /// What a Content-Range says: (first, last, total).
        fn content_range(value: &str) -> (u64, u64, u64) {
            let rest = value.strip_prefix("bytes ").expect("bytes unit");
            let (span, total) = rest.split_once('/').expect("a total");
            let (first, last) = span.split_once('-').expect("a span");
            let number = |n: &str| n.parse::<u64>().expect("a number");
            (number(first), number(last), number(total))
        }

        proptest! {
            /// Never a panic; a partial answer lies inside the object, and the bytes the
            /// download code serves (the plan's window over the object) are exactly as many as
            /// its Content-Range says, and are those bytes.
            #[test]
            fn plans_stay_inside_the_object(h in header(), size in prop_oneof![0u64..3000, Just(u64::MAX)], if_range in any::<bool>()) {
                let validator = if_range.then_some(TAG);
                let planned = plan(Some(&h), validator, TAG, size);
                if let Ok(p) = planned {
                    let (window, range) = p.window(size);
                    prop_assert!(window.start <= window.end && window.end <= size);
                    match p {
                        Plan::Full => prop_assert!(window == (0..size) && range.is_none()),
                        Plan::Partial { start, end } => {
                            prop_assert!(start <= end && end < size);
                            let (first, last, total) = content_range(&range.expect("206 has a Content-Range"));
                            prop_assert_eq!((first, last, total), (start, end, size));
                            prop_assert_eq!(window.end - window.start, last - first + 1);
                            if size < 3000 {
                                let object: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                                let served = &object[usize::try_from(window.start).expect("small")..usize::try_from(window.end).expect("small")];
                                prop_assert_eq!(served.len() as u64, last - first + 1);
                                prop_assert_eq!(served.first().copied(), Some((first % 251) as u8));
                            }
                        }
                    }
                }
            }

            /// More than one well-formed range is `Multiple`, however many.
            #[test]
            fn several_ranges_are_multiple(specs in prop::collection::vec(spec(), 2..600), size in 1u64..5000) {
                let h = format!("bytes={}", specs.join(","));
                prop_assert_eq!(plan(Some(&h), None, TAG, size), Err(RangeError::Multiple));
            }

            /// One range means what RFC 9110 §14.1.2 says.
            #[test]
            fn one_range_means_what_it_says(a in 0u64..5000, b in 0u64..5000, size in 0u64..5000) {
                let (lo, hi) = (a.min(b), a.max(b));
                let indexed = plan(Some(&format!("bytes={lo}-{hi}")), None, TAG, size);
                let want = if lo < size { Ok(Plan::Partial { start: lo, end: hi.min(size - 1) }) } else { Err(RangeError::Unsatisfiable) };
                prop_assert_eq!(indexed, want);
                let suffix = plan(Some(&format!("bytes=-{a}")), None, TAG, size);
                let want = if a > 0 && size > 0 { Ok(Plan::Partial { start: size.saturating_sub(a), end: size - 1 }) } else { Err(RangeError::Unsatisfiable) };
                prop_assert_eq!(suffix, want);
                // a stale If-Range sends everything
                prop_assert_eq!(plan(Some(&format!("bytes={lo}-{hi}")), Some("\"stale\""), TAG, size), Ok(Plan::Full));
            }
        }
    }
}
