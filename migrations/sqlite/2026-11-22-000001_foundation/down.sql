DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE user_trades;
DROP TABLE user_sites;
DROP TABLE users;
DROP TABLE sites;
DROP TABLE app_settings;
