//! What a device is told about the bytes it will get: their size and three digests
//! (SHA-256 for devicehub's own doors, SHA-1 and MD5 because hawkBit clients check them).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub size: u64,
    /// Lower-case hex, as every door shows it.
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

impl Digests {
    /// The digests of a small file held in memory (a signature, a manifest).
    pub fn of_bytes(bytes: &[u8]) -> Digests {
        use sha2::Digest;
        Digests {
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            sha1: hex::encode(sha1::Sha1::digest(bytes)),
            md5: hex::encode(md5::Md5::digest(bytes)),
        }
    }
}
