DROP TABLE sign_in_failures;
DROP TABLE web_sessions;
DROP TABLE user_passwords;
