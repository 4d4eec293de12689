-- Integrity of stored objects (issue 9): one row per object a firmware image or a pipeline
-- output lives in, with the size and SHA-256 recorded when it was written, when the scrub last
-- re-hashed it, the lease of the scrubber checking it now, and the quarantine of an object
-- whose bytes no longer match (its downloads are refused until a check finds them right again).
CREATE TABLE object_checks (
    object_key TEXT PRIMARY KEY NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    -- when the scrub last read it; NULL: never since it was written
    checked_at TIMESTAMP,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    quarantined_at TIMESTAMP,
    -- what the last check found: size (NULL: the object is missing) and SHA-256
    found_size BIGINT,
    found_sha256 TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX object_checks_checked_at ON object_checks (checked_at);
CREATE INDEX object_checks_quarantined_at ON object_checks (quarantined_at);

-- What relies on an object is looked up by its key (the scrub's bookkeeping, a quarantine's
-- consequences, the orphan sweep).
CREATE INDEX firmware_object_key ON firmware (object_key);
CREATE INDEX artifacts_object_key ON artifacts (object_key);
CREATE INDEX sessions_artifact_key ON sessions (artifact_key);
