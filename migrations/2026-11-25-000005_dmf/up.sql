-- hawkBit DMF (issue 11): which devices are DMF things, where their gateway listens, and the
-- device's target token kept encrypted under the server key (the hash stays for DDI checks),
-- so DMF messages can carry it as `targetSecurityToken`.

-- The thing's reply exchange (AMQP `reply_to` of THING_CREATED, or set by an admin);
-- NULL: not a DMF thing, assignments wait for a DDI poll.
ALTER TABLE devices ADD COLUMN dmf_reply_to TEXT;
-- The target token sealed by `service::sealing` (context `device-target-token:<id>`).
ALTER TABLE devices ADD COLUMN target_token_sealed TEXT;
