-- Catalog, people and rights. Ids are UUID text; times are UTC.
CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    tid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE models (
    id TEXT PRIMARY KEY NOT NULL,
    tid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX models_product_id ON models (product_id);

CREATE TABLE channels (
    id TEXT PRIMARY KEY NOT NULL,
    tid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX channels_product_id ON channels (product_id);

CREATE TABLE delivery_methods (
    id TEXT PRIMARY KEY NOT NULL,
    tid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE delivery_procedures (
    id TEXT PRIMARY KEY NOT NULL,
    tid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    delivery_method_id TEXT NOT NULL REFERENCES delivery_methods (id),
    steps TEXT NOT NULL,
    confirm BOOLEAN NOT NULL,
    timeouts TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE firmware (
    id TEXT PRIMARY KEY NOT NULL,
    model_id TEXT NOT NULL REFERENCES models (id),
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    filename TEXT,
    size BIGINT,
    sha256 TEXT,
    sha1 TEXT,
    md5 TEXT,
    object_key TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    released_at TIMESTAMP,
    UNIQUE (model_id, version)
);

CREATE TABLE firmware_channels (
    firmware_id TEXT NOT NULL REFERENCES firmware (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels (id),
    PRIMARY KEY (firmware_id, channel_id)
);
CREATE INDEX firmware_channels_channel_id ON firmware_channels (channel_id);

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    device_id TEXT NOT NULL,
    name TEXT,
    model_id TEXT REFERENCES models (id),
    channel_id TEXT REFERENCES channels (id),
    installed_firmware_id TEXT REFERENCES firmware (id) ON DELETE SET NULL,
    installed_version TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    last_seen TIMESTAMP,
    last_session_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (product_id, device_id)
);
CREATE INDEX devices_model_id ON devices (model_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Only the SHA-256 of a token is kept; `hint` is its first characters, for display.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

CREATE TABLE grants (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_id TEXT REFERENCES products (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX grants_user_id ON grants (user_id);
