DROP TABLE server_secrets;
DROP TABLE artifacts;
DROP TABLE jobs;
DROP TABLE session_events;
DROP TABLE sessions;
DROP TABLE counters;
