-- The whole record of PRODUCT.md. Ids are 16-byte BLOBs, times integer microseconds (UTC),
-- booleans 0/1. Deleted devices stay as rows with status 'DELETED' (soft delete): the
-- partial unique indexes below free their reference_id and device_identifier.
CREATE TABLE accounts (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    live_mode   INTEGER NOT NULL,
    key_hash    BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE divisions (
    id          BLOB PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    is_default  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX divisions_default ON divisions (account_id) WHERE is_default = 1;
CREATE UNIQUE INDEX divisions_name ON divisions (account_id, name);

CREATE TABLE device_profiles (
    id           BLOB PRIMARY KEY,
    account_id   BLOB NOT NULL REFERENCES accounts (id),
    division_id  BLOB NOT NULL REFERENCES divisions (id),
    name         TEXT NOT NULL,
    is_default   INTEGER NOT NULL,
    allow_read   INTEGER NOT NULL,
    allow_write  INTEGER NOT NULL,
    allow_renew  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX device_profiles_default ON device_profiles (account_id) WHERE is_default = 1;
CREATE UNIQUE INDEX device_profiles_name ON device_profiles (account_id, name);

CREATE TABLE profile_fields (
    id          BLOB PRIMARY KEY,
    profile_id  BLOB NOT NULL REFERENCES device_profiles (id),
    name        TEXT NOT NULL,
    mandatory   INTEGER NOT NULL,
    position    INTEGER NOT NULL
);
CREATE UNIQUE INDEX profile_fields_name ON profile_fields (profile_id, name);

CREATE TABLE devices (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts (id),
    live_mode          INTEGER NOT NULL,
    reference_id       TEXT,
    device_identifier  TEXT,
    division_id        BLOB NOT NULL REFERENCES divisions (id),
    profile_id         BLOB NOT NULL REFERENCES device_profiles (id),
    status             TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    allow_read         INTEGER NOT NULL,
    allow_write        INTEGER NOT NULL,
    allow_renew        INTEGER NOT NULL,
    last_seen          INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    version            INTEGER NOT NULL
);
CREATE UNIQUE INDEX devices_reference ON devices (account_id, live_mode, reference_id)
    WHERE reference_id IS NOT NULL AND status <> 'DELETED';
CREATE UNIQUE INDEX devices_identifier ON devices (division_id, live_mode, device_identifier)
    WHERE device_identifier IS NOT NULL AND status <> 'DELETED';
CREATE INDEX devices_listing ON devices (account_id, live_mode, created_at DESC, id DESC)
    WHERE status <> 'DELETED';

CREATE TABLE device_field_values (
    device_id  BLOB NOT NULL REFERENCES devices (id),
    field_id   BLOB NOT NULL REFERENCES profile_fields (id),
    value      TEXT NOT NULL,
    PRIMARY KEY (device_id, field_id)
);

CREATE TABLE certificates (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts (id),
    device_id          BLOB NOT NULL REFERENCES devices (id),
    serial             TEXT NOT NULL,
    fingerprint        BLOB NOT NULL UNIQUE,
    public_key_hash    BLOB NOT NULL,
    pem                TEXT NOT NULL,
    issuer             TEXT NOT NULL,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER,
    revocation_reason  TEXT
);
CREATE UNIQUE INDEX certificates_serial ON certificates (issuer, serial);
CREATE INDEX certificates_device ON certificates (device_id);
CREATE INDEX certificates_public_key ON certificates (public_key_hash);

-- One-time EST enrollment secrets (RFC 7030 simpleenroll); only a hash is kept.
CREATE TABLE enrollment_secrets (
    id           BLOB PRIMARY KEY,
    device_id    BLOB NOT NULL REFERENCES devices (id),
    secret_hash  BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
