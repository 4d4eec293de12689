//! Handles and references: every catalog object has a UUID `id` and a unique text handle
//! `tid` (what a bootloader knows, e.g. `CAFEBABE` or `dp-handle`). Request fields that
//! name an object accept either, through [`ObjectRef`].

use std::fmt;

use uuid::Uuid;

use crate::error::{Error, Result};

/// A reference to a catalog object as a client wrote it: its UUID or its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRef {
    Id(Uuid),
    Tid(String),
}

impl ObjectRef {
    /// Parses a client-given reference. A string that parses as a UUID is an id; anything
    /// else must be a valid handle. Handles can never look like UUIDs (see [`validate_tid`]),
    /// so the reading is never ambiguous.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.chars().any(char::is_control) {
            return Err(Error::invalid(format!("{field}: must not contain control characters (got {raw:?})")));
        }
        let raw = raw.trim();
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(ObjectRef::Id(id));
        }
        validate_tid(field, raw)?;
        Ok(ObjectRef::Tid(raw.to_owned()))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Id(id) => write!(f, "{id}"),
            ObjectRef::Tid(tid) => write!(f, "'{tid}'"),
        }
    }
}

/// A handle: 1–64 characters of `A-Z a-z 0-9 . _ -`, not a UUID.
pub fn validate_tid(field: &str, tid: &str) -> Result<()> {
    let ok_chars = tid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if tid.is_empty() || tid.len() > 64 || !ok_chars {
        return Err(Error::invalid(format!(
            "{field}: a handle is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-' (got {tid:?})"
        )));
    }
    if Uuid::parse_str(tid).is_ok() {
        return Err(Error::invalid(format!("{field}: a handle must not look like a UUID (got {tid:?})")));
    }
    Ok(())
}

/// A display name: 1–200 characters, not only white space, no control characters (a name
/// is one line; NUL cannot even be stored by PostgreSQL).
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid(format!("{field}: must be 1 to 200 characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!("{field}: must not contain control characters (got {name:?})")));
    }
    Ok(())
}

/// A device identity as devices send it (hawkBit controllerId rules: 1–256 characters,
/// no white space or control characters).
pub fn validate_device_id(device_id: &str) -> Result<()> {
    if device_id.is_empty()
        || device_id.chars().count() > 256
        || device_id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid("device_id: must be 1 to 256 characters without white space"));
    }
    Ok(())
}

/// A user name: 1–150 characters of `A-Z a-z 0-9 @ . + _ -` (Django's rule).
pub fn validate_username(username: &str) -> Result<()> {
    let ok_chars = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '+' | '_' | '-'));
    if username.is_empty() || username.len() > 150 || !ok_chars {
        return Err(Error::invalid("username: 1 to 150 characters of A-Z, a-z, 0-9, '@', '.', '+', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_ids_or_handles() {
        let id = Uuid::new_v4();
        assert_eq!(ObjectRef::parse("model", &id.to_string()).ok(), Some(ObjectRef::Id(id)));
        assert_eq!(ObjectRef::parse("model", "CAFEBABE").ok(), Some(ObjectRef::Tid("CAFEBABE".into())));
        assert!(ObjectRef::parse("model", "has space").is_err());
        assert!(ObjectRef::parse("model", "").is_err());
    }

    #[test]
    fn handles_never_look_like_uuids() {
        assert!(validate_tid("tid", "dp-handle").is_ok());
        assert!(validate_tid("tid", &Uuid::new_v4().simple().to_string()).is_err());
        assert!(validate_tid("tid", &"x".repeat(65)).is_err());
    }

    #[test]
    fn no_control_characters_in_names_handles_ids_and_usernames() {
        for bad in ["a\0b", "a\nb", "a\tb", "a\u{7f}", "a\u{85}"] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
            assert!(validate_tid("tid", bad).is_err(), "{bad:?}");
            assert!(validate_device_id(bad).is_err(), "{bad:?}");
            assert!(validate_username(bad).is_err(), "{bad:?}");
            assert!(ObjectRef::parse("model", bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("name", "Capteur été 2").is_ok());
    }
}
