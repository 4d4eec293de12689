DROP TABLE output_claims;
DROP TABLE signing_keys;
ALTER TABLE devices DROP COLUMN age_recipient;
