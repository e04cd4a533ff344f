-- Issue 15 (operators): the people who sign in to the console, their server-side sessions
-- and their failed sign-ins. An operator without an account is a platform administrator
-- (role admin, every account). Emails are stored NFC + casefolded, so they compare as
-- typed. Never a password (its Argon2id PHC string only), never a session token (its
-- SHA-256 only); the TOTP secret is stored encrypted with the data directory's totp.key.
CREATE TABLE operators (
    id                   BYTEA PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    account_id           BYTEA REFERENCES accounts (id),
    password_hash        TEXT NOT NULL,
    password_changed_at  BIGINT NOT NULL,
    totp_secret          BYTEA,
    totp_enabled_at      BIGINT,
    totp_last_step       BIGINT,
    disabled_at          BIGINT,
    created_at           BIGINT NOT NULL,
    CHECK (account_id IS NOT NULL OR role = 'admin')
);
CREATE INDEX operators_account ON operators (account_id);
-- `id` names a session in lists and revocations (the log's object id); the token's hash
-- is how a request finds it.
CREATE TABLE operator_sessions (
    token_hash    BYTEA PRIMARY KEY,
    id            BYTEA NOT NULL UNIQUE,
    operator_id   BYTEA NOT NULL REFERENCES operators (id),
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    address       TEXT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id, created_at);
-- Failed sign-ins per email (SHA-256 of the normalised address, known or not: an unknown
-- email is limited like a known one, so the limit tells nothing either).
CREATE TABLE operator_login_failures (
    email_key  BYTEA NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX operator_login_failures_key ON operator_login_failures (email_key, at);
