//! Tokens and authentication. A token is `dh_` plus 43 random base62 characters (256
//! bits); only its SHA-256 is stored, so a database leak reveals no usable token. High
//! entropy makes a slow password hash unnecessary (crates.io does the same).

use rand::RngExt;
use sha2::{Digest, Sha256};

use super::Actor;
use crate::db::{self, AnyConnection};
use crate::domain::rights::{Grant, Role};
use crate::error::{Error, Result};
use crate::service::Hub;

pub const TOKEN_PREFIX: &str = "dh_";
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_RANDOM_CHARS: usize = 43;

pub fn generate_token() -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS);
    token.push_str(TOKEN_PREFIX);
    for _ in 0..TOKEN_RANDOM_CHARS {
        token.push(char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]));
    }
    token
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The first characters of a token, shown in lists so people can tell tokens apart.
pub fn token_hint(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 4).collect()
}

/// Turns a presented token into an actor: 401 if unknown, revoked, expired or the user
/// is deactivated.
pub async fn authenticate(hub: &Hub, token: &str) -> Result<Actor> {
    let credentials = Credentials(token.to_owned());
    hub.db.run(move |conn| credentials.authenticate_in(conn)).await
}

/// A token as presented, not yet checked. Hot device paths check it inside their own
/// database work, saving a round trip through the blocking pool per request.
#[derive(Clone)]
pub struct Credentials(pub String);

impl Credentials {
    pub fn authenticate_in(&self, conn: &mut AnyConnection) -> Result<Actor> {
        let now = crate::time::now();
        let (token, user) = db::token::find_active_by_hash(conn, &hash_token(&self.0), now)?
            .ok_or_else(|| Error::Unauthorized("the token is not valid (unknown, revoked or expired)".into()))?;
        // At most one write a minute per token: authentication stays a read.
        if token.last_used_at.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
            db::token::touch(conn, &token.id, now)?;
        }
        let grants = load_grants(conn, &user.id)?;
        Ok(Actor { user_id: user.id, username: user.username, grants })
    }
}

pub fn load_grants(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<Grant>> {
    db::grant::for_user(conn, user_id)?
        .into_iter()
        .map(|g| {
            Ok(Grant { role: g.role.parse::<Role>()?, product: g.product_id.as_deref().map(db::parse_id).transpose()? })
        })
        .collect()
}

/// Stores a new token for a user and returns its id.
pub fn insert_token(
    conn: &mut AnyConnection,
    user_id: &str,
    name: &str,
    token: &str,
    expires_at: Option<chrono::NaiveDateTime>,
) -> Result<db::token::ApiToken> {
    let row = db::token::ApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        token_hash: hash_token(token),
        hint: token_hint(token),
        created_at: crate::time::now(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    db::token::insert(conn, &row).map_err(Error::from).map_err(|e| match e {
        Error::Conflict { .. } => Error::conflict("already_exists", "this token is already in use"),
        other => other,
    })?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS);
        assert!(a[TOKEN_PREFIX.len()..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}

// ---- passwords ---------------------------------------------------------------------------

/// Passwords are 10 to 256 characters, without control characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

pub fn validate_password(field: &str, password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(Error::invalid(format!(
            "{field}: a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(format!("{field}: a password holds no control characters")));
    }
    Ok(())
}

/// An argon2id hash (PHC string, default parameters: 19 MiB, 2 passes) of a password. Slow on
/// purpose: call it off the async threads ([`hash_password_async`]).
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches `hash`. Without a hash (no such user, or no password), a fixed
/// hash is checked anyway, so the answer takes as long and tells nothing.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not the password of anyone").unwrap_or_default());
    let (stored, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(stored)
        .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
    ok && real
}

pub async fn hash_password_async(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::internal(format!("password task failed: {e}")))?
}

pub async fn verify_password_async(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, hash.as_deref())).await.unwrap_or(false)
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("wrong horse battery", Some(&hash)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("x", Some("not a hash")));
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "long enough now").is_ok());
        assert!(validate_password("password", "long enough\u{7}now").is_err());
    }
}
