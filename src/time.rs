//! Time: the database keeps UTC `Timestamp`s with microsecond precision (PostgreSQL's
//! precision; SQLite is truncated to match so both backends compare alike). The API shows
//! RFC 3339 with an offset, as seed 003 does.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::Serializer;

/// Now, in UTC, truncated to microseconds.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

pub fn to_rfc3339(t: &NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(*t, Utc).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// `#[serde(serialize_with = "crate::time::rfc3339")]`
pub fn rfc3339<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_rfc3339(t))
}

/// `#[serde(serialize_with = "crate::time::rfc3339_opt")]`
pub fn rfc3339_opt<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&to_rfc3339(t)),
        None => s.serialize_none(),
    }
}

/// Parses a client-given RFC 3339 time into UTC.
pub fn parse_rfc3339(field: &str, raw: &str) -> crate::error::Result<NaiveDateTime> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc).naive_utc().trunc_subsecs(6))
        .map_err(|e| crate::error::Error::invalid(format!("{field}: {raw:?} is not an RFC 3339 time ({e})")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_has_an_offset_and_microseconds() {
        let t = chrono::NaiveDate::from_ymd_opt(2023, 4, 18).and_then(|d| d.and_hms_micro_opt(11, 12, 50, 365_610));
        assert_eq!(t.map(|t| super::to_rfc3339(&t)).as_deref(), Some("2023-04-18T11:12:50.365610+00:00"));
    }
}
