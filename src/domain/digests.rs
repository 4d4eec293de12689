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
