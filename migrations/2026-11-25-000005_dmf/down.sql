ALTER TABLE devices DROP COLUMN target_token_sealed;
ALTER TABLE devices DROP COLUMN dmf_reply_to;
