-- Large assignments run as a job (issue 14): one row per assignment that reaches more
-- devices than are assigned within the request. The job assigns the devices in `devices`
-- (a JSON array of device row ids, in order) a few at a time, each chunk in its own short
-- transaction that also moves `done` on, so polls are never held up for long and a worker
-- that dies leaves the rest to the next.
CREATE TABLE assignments (
    id TEXT PRIMARY KEY NOT NULL,
    firmware_id TEXT NOT NULL REFERENCES firmware (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    creator_id TEXT NOT NULL REFERENCES users (id),
    -- the delivery procedure, action type and maintenance window (JSON)
    plan TEXT NOT NULL,
    devices TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL,
    assigned INTEGER NOT NULL,
    -- devices passed over, with the reason (JSON array of {device, reason})
    skipped TEXT NOT NULL,
    -- running, done or failed
    state TEXT NOT NULL,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX assignments_firmware_id ON assignments (firmware_id);
