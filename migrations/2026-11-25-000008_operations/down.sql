DROP INDEX devices_device_id;
ALTER TABLE session_events DROP COLUMN request_id;
ALTER TABLE sessions DROP COLUMN bytes_served;
