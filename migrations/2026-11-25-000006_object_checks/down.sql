DROP INDEX sessions_artifact_key;
DROP INDEX artifacts_object_key;
DROP INDEX firmware_object_key;
DROP TABLE object_checks;
