-- Firmware-update sessions, their history, the durable job queue and pipeline outputs.

-- Counters for short numeric ids (hawkBit action ids must stay below 2^31).
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('session', 0);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    number BIGINT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    creator_id TEXT NOT NULL REFERENCES users (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    model_id TEXT NOT NULL REFERENCES models (id),
    channel_id TEXT REFERENCES channels (id),
    device_id TEXT REFERENCES devices (id) ON DELETE SET NULL,
    procedure_id TEXT NOT NULL REFERENCES delivery_procedures (id),
    current_firmware_id TEXT REFERENCES firmware (id),
    current_version TEXT,
    target_firmware_id TEXT REFERENCES firmware (id),
    -- What the procedure said when the session began: later edits do not change it.
    steps TEXT NOT NULL,
    confirm BOOLEAN NOT NULL,
    timeouts TEXT NOT NULL,
    payload TEXT,
    artifact_key TEXT,
    artifact_sha256 TEXT,
    fail_reason TEXT,
    expires_at TIMESTAMP,
    -- Set when a timer ended the session's life: it answers 404 but stays in the history.
    expired_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_due ON sessions (expires_at) WHERE expired_at IS NULL;
CREATE INDEX sessions_device ON sessions (device_id, created_at);
CREATE INDEX sessions_product_state ON sessions (product_id, state);

CREATE TABLE session_events (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    message TEXT
);
CREATE INDEX session_events_session ON session_events (session_id, at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    run_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_run_at ON jobs (run_at);
CREATE INDEX jobs_session ON jobs (session_id);

-- Pipeline outputs, content-addressed: one run serves every identical request.
CREATE TABLE artifacts (
    cache_key TEXT PRIMARY KEY NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    extras TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Secrets every instance must share (the download-link signing key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
