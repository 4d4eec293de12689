-- Delivery procedures that do real work (issue 12): a device's public key for per-device
-- encryption, and the signing keys of the `sign` step.

-- The device's age X25519 recipient (`age1…`): the `encrypt` step encrypts to it. Public;
-- the device keeps the matching identity.
ALTER TABLE devices ADD COLUMN age_recipient TEXT;

-- Ed25519 (minisign) signing keys. The secret key is stored sealed under the server key
-- (`service::sealing`, bound to `signing-key:<id>`): a database dump alone holds nothing
-- that signs.
CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    -- minisign's key id, 16 hex digits, as `minisign -V` prints it
    key_id TEXT NOT NULL,
    -- the minisign public key file (`untrusted comment: …` and the base64 line)
    public_key TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Single flight: the run preparing an output holds a claim on its cache key while it works
-- (renewed like a job lease); identical runs, on any worker or instance, wait for its
-- result instead of repeating the work. A claim whose holder died expires.
CREATE TABLE output_claims (
    cache_key TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
