-- Operations (issue 15): how many bytes of a session's deliverable were served (whole
-- downloads and byte ranges alike; a streaming client reads only ranges, and ranges write
-- no event each), and the request id of the HTTP request that wrote an event (NULL for
-- events written by jobs and timers, and for events written before this migration).
ALTER TABLE sessions ADD COLUMN bytes_served BIGINT NOT NULL DEFAULT 0;
ALTER TABLE session_events ADD COLUMN request_id TEXT;

-- A device's handle (its device_id) names it in API paths within the caller's products;
-- the unique (product_id, device_id) index cannot serve a lookup by device_id alone.
CREATE INDEX devices_device_id ON devices (device_id);
