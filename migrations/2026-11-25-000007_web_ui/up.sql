-- The admin web UI: passwords, signed-in browser sessions, and the failed sign-in counters
-- that slow guessing down. All three are rows, so every instance sees the same.

-- An argon2id PHC string per user who has a password (automation users may have none).
CREATE TABLE user_passwords (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- A signed-in browser. The cookie holds a random secret; only its SHA-256 is kept here.
-- `last_seen_at` moves at most once a minute; idle past the limit, or past `expires_at`,
-- the session is over. Signing out deletes the row.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX web_sessions_user_id ON web_sessions (user_id);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);

-- Failed sign-ins per subject ('user:<name>' or 'address:<ip>'): past a few, each further
-- attempt must wait until `blocked_until`.
CREATE TABLE sign_in_failures (
    subject TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    blocked_until TIMESTAMP
);
