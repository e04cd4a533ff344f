-- Issue 15 (operators): the people who sign in to the console, their server-side sessions
-- and their failed sign-ins. An operator without an account is a platform administrator
-- (role admin, every account). Emails are stored NFC + casefolded, so they compare as
-- typed. Never a password (its Argon2id PHC string only), never a session token (its
-- SHA-256 only); the TOTP secret is stored encrypted with the data directory's totp.key.
CREATE TABLE operators (
    id                   BLOB PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    account_id           BLOB REFERENCES accounts (id),
    password_hash        TEXT NOT NULL,
    password_changed_at  INTEGER NOT NULL,
    totp_secret          BLOB,
    totp_enabled_at      INTEGER,
    totp_last_step       INTEGER,
    disabled_at          INTEGER,
    created_at           INTEGER NOT NULL,
    CHECK (account_id IS NOT NULL OR role = 'admin')
);
CREATE INDEX operators_account ON operators (account_id);
-- `id` names a session in lists and revocations (the log's object id); the token's hash
-- is how a request finds it.
CREATE TABLE operator_sessions (
    token_hash    BLOB PRIMARY KEY,
    id            BLOB NOT NULL UNIQUE,
    operator_id   BLOB NOT NULL REFERENCES operators (id),
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    address       TEXT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id, created_at);
-- Failed sign-ins per email (SHA-256 of the normalised address, known or not: an unknown
-- email is limited like a known one, so the limit tells nothing either).
CREATE TABLE operator_login_failures (
    email_key  BLOB NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX operator_login_failures_key ON operator_login_failures (email_key, at);
