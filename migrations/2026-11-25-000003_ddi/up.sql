-- hawkBit DDI: per-product switches, device credentials and consent, assignment details.

-- Target tokens are on by default (hawkBit's all-off default is its users' first complaint);
-- gateway tokens (API tokens with a device role on the product) must be switched on.
ALTER TABLE products ADD COLUMN ddi_target_token_auth BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE products ADD COLUMN ddi_gateway_token_auth BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE products ADD COLUMN ddi_polling_secs INTEGER NOT NULL DEFAULT 300;
ALTER TABLE products ADD COLUMN ddi_confirmation_required BOOLEAN NOT NULL DEFAULT FALSE;

-- The device's own DDI credential, kept only as a SHA-256.
ALTER TABLE devices ADD COLUMN target_token_hash TEXT;
-- hawkBit's requestControllerAttributes: ask the device for its attributes (configData).
ALTER TABLE devices ADD COLUMN attributes_requested BOOLEAN NOT NULL DEFAULT TRUE;
-- Auto-confirm state, JSON {"initiator", "remark", "activated_at"}; NULL: off.
ALTER TABLE devices ADD COLUMN auto_confirm TEXT;
-- The assignment the device last installed (hawkBit installedBase).
ALTER TABLE devices ADD COLUMN installed_session_id TEXT;
CREATE INDEX devices_target_token_hash ON devices (target_token_hash);

-- Sessions created by an assignment are hawkBit actions: how the device should act,
-- an optional maintenance window, a pending cancel, and consent.
ALTER TABLE sessions ADD COLUMN action_type TEXT;
ALTER TABLE sessions ADD COLUMN maintenance_start TIMESTAMP;
ALTER TABLE sessions ADD COLUMN maintenance_end TIMESTAMP;
ALTER TABLE sessions ADD COLUMN cancel_requested_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN consent_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN consented_at TIMESTAMP;
