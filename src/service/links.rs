//! Download links: a short-lived JWT (HS256) bound to one session and one deliverable.
//! The key is a random secret kept in the database, so every instance signs and checks
//! alike and a restart does not invalidate links already handed out.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The session id.
    pub sub: String,
    /// The deliverable's SHA-256: a link stops working when the deliverable changes.
    pub art: String,
    pub exp: i64,
    pub iat: i64,
}

#[derive(Clone)]
pub struct LinkSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// The name of the signing secret in `server_secrets`.
pub const SECRET_NAME: &str = "download_link_key";

impl LinkSigner {
    pub fn new(secret: &[u8]) -> LinkSigner {
        // Exactly one crypto backend is compiled in; installing it explicitly keeps a stray
        // feature elsewhere from turning the first signature into a panic.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        LinkSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A new random secret, hex-encoded.
    pub fn generate_secret() -> String {
        use rand::RngExt;
        let bytes: [u8; 32] = rand::rng().random();
        hex::encode(bytes)
    }

    pub fn sign(
        &self,
        session_id: &str,
        artifact_sha256: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<String> {
        let claims = Claims {
            sub: session_id.to_owned(),
            art: artifact_sha256.to_owned(),
            exp: expires.timestamp(),
            iat: chrono::Utc::now().timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing a download link: {e}")))
    }

    /// Checks signature and expiry: 401 for a link that is expired, tampered or garbage.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => Error::Unauthorized(
                    "the download link has expired; ask for the session again for a fresh one".into(),
                ),
                _ => Error::Unauthorized("the download link is not valid".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_and_refuse_tampering_and_expiry() -> Result<()> {
        let signer = LinkSigner::new(b"0123456789abcdef0123456789abcdef");
        let soon = chrono::Utc::now() + chrono::Duration::minutes(5);
        let token = signer.sign("s1", "abc", soon)?;
        let claims = signer.verify(&token)?;
        assert_eq!((claims.sub.as_str(), claims.art.as_str()), ("s1", "abc"));

        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(matches!(signer.verify(&tampered), Err(Error::Unauthorized(_))));
        let other = LinkSigner::new(b"another secret entirely, 32 bytes");
        assert!(other.verify(&token).is_err(), "another key does not accept it");
        let past = signer.sign("s1", "abc", chrono::Utc::now() - chrono::Duration::seconds(1))?;
        assert!(matches!(signer.verify(&past), Err(Error::Unauthorized(m)) if m.contains("expired")));
        Ok(())
    }
}
