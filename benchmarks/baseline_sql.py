"""The baselines' SQL: the schema and the statements devreg runs, copied as text.

The baselines import nothing from devreg (they are what devreg is measured against), so
what they share with it is copied here: the tables of
src/devreg/storage/migrations/0001_initial.{sqlite,postgres}.sql that the benchmarked
requests touch (each CREATE statement verbatim, and the later migrations' ALTERs of them),
and the statements of src/devreg/storage/sql.py those requests run.
tests/benchmarks/test_baseline_sql.py checks that both copies still match devreg, so the
baselines cannot drift from what they measure.
"""

from __future__ import annotations

SQLITE_SCHEMA = """
CREATE TABLE accounts (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
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
ALTER TABLE certificates ADD COLUMN issued_by TEXT;
ALTER TABLE certificates ADD COLUMN parent_id BLOB;
"""

# The change log (migration 0007_change_log.sqlite.sql), verbatim.
SQLITE_CHANGE_LOG_SCHEMA = """
CREATE TABLE change_log (
    seq             INTEGER PRIMARY KEY,
    time            INTEGER NOT NULL,
    account_id      BLOB,
    live_mode       INTEGER,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    object_type     TEXT NOT NULL,
    object_id       BLOB NOT NULL,
    object_version  INTEGER,
    before          TEXT,
    after           TEXT,
    prev_hash       BLOB NOT NULL,
    hash            BLOB NOT NULL
);
CREATE INDEX change_log_object ON change_log (object_id, time, seq);
CREATE INDEX change_log_account ON change_log (account_id, seq);
CREATE TABLE change_head (
    one          INTEGER PRIMARY KEY CHECK (one = 1),
    seq          INTEGER NOT NULL,
    time         INTEGER NOT NULL,
    hash         BLOB NOT NULL,
    pruned_seq   INTEGER NOT NULL,
    pruned_hash  BLOB NOT NULL
);
INSERT INTO change_head (one, seq, time, hash, pruned_seq, pruned_hash)
    VALUES (1, 0, 0, zeroblob(32), 0, zeroblob(32));
"""
SQLITE_SCHEMA += SQLITE_CHANGE_LOG_SCHEMA

# The tables the F PATCH touches (with its change log entry), for the raw asyncpg baseline.
POSTGRES_SCHEMA = """
CREATE TABLE accounts (
    id          BYTEA PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE divisions (
    id          BYTEA PRIMARY KEY,
    account_id  BYTEA NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    is_default  BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX divisions_default ON divisions (account_id) WHERE is_default;
CREATE UNIQUE INDEX divisions_name ON divisions (account_id, name);
CREATE TABLE device_profiles (
    id           BYTEA PRIMARY KEY,
    account_id   BYTEA NOT NULL REFERENCES accounts (id),
    division_id  BYTEA NOT NULL REFERENCES divisions (id),
    name         TEXT NOT NULL,
    is_default   BOOLEAN NOT NULL,
    allow_read   BOOLEAN NOT NULL,
    allow_write  BOOLEAN NOT NULL,
    allow_renew  BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX device_profiles_default ON device_profiles (account_id) WHERE is_default;
CREATE UNIQUE INDEX device_profiles_name ON device_profiles (account_id, name);
CREATE TABLE devices (
    id                 BYTEA PRIMARY KEY,
    account_id         BYTEA NOT NULL REFERENCES accounts (id),
    live_mode          BOOLEAN NOT NULL,
    reference_id       TEXT,
    device_identifier  TEXT,
    division_id        BYTEA NOT NULL REFERENCES divisions (id),
    profile_id         BYTEA NOT NULL REFERENCES device_profiles (id),
    status             TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    allow_read         BOOLEAN NOT NULL,
    allow_write        BOOLEAN NOT NULL,
    allow_renew        BOOLEAN NOT NULL,
    last_seen          BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL
);
CREATE UNIQUE INDEX devices_reference ON devices (account_id, live_mode, reference_id)
    WHERE reference_id IS NOT NULL AND status <> 'DELETED';
CREATE UNIQUE INDEX devices_identifier ON devices (division_id, live_mode, device_identifier)
    WHERE device_identifier IS NOT NULL AND status <> 'DELETED';
CREATE INDEX devices_listing ON devices (account_id, live_mode, created_at DESC, id DESC)
    WHERE status <> 'DELETED';
CREATE TABLE profile_fields (
    id          BYTEA PRIMARY KEY,
    profile_id  BYTEA NOT NULL REFERENCES device_profiles (id),
    name        TEXT NOT NULL,
    mandatory   BOOLEAN NOT NULL,
    position    INTEGER NOT NULL
);
CREATE UNIQUE INDEX profile_fields_name ON profile_fields (profile_id, name);
CREATE TABLE device_field_values (
    device_id  BYTEA NOT NULL REFERENCES devices (id),
    field_id   BYTEA NOT NULL REFERENCES profile_fields (id),
    value      TEXT NOT NULL,
    PRIMARY KEY (device_id, field_id)
);
"""

# The change log (migration 0007_change_log.postgres.sql), verbatim.
POSTGRES_CHANGE_LOG_SCHEMA = """
CREATE TABLE change_log (
    seq             BIGINT PRIMARY KEY,
    time            BIGINT NOT NULL,
    account_id      BYTEA,
    live_mode       BOOLEAN,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    object_type     TEXT NOT NULL,
    object_id       BYTEA NOT NULL,
    object_version  BIGINT,
    before          TEXT,
    after           TEXT,
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX change_log_object ON change_log (object_id, time, seq);
CREATE INDEX change_log_account ON change_log (account_id, seq);
CREATE TABLE change_head (
    one          INTEGER PRIMARY KEY CHECK (one = 1),
    seq          BIGINT NOT NULL,
    time         BIGINT NOT NULL,
    hash         BYTEA NOT NULL,
    pruned_seq   BIGINT NOT NULL,
    pruned_hash  BYTEA NOT NULL
);
INSERT INTO change_head (one, seq, time, hash, pruned_seq, pruned_hash)
    VALUES (1, 0, 0, decode(repeat('00', 32), 'hex'), 0, decode(repeat('00', 32), 'hex'));
"""
POSTGRES_SCHEMA += POSTGRES_CHANGE_LOG_SCHEMA

DEVICE_COLUMNS = (
    "id, account_id, live_mode, reference_id, device_identifier, division_id, profile_id,"
    " status, allow_read, allow_write, allow_renew, last_seen, created_at, updated_at, version"
)
PROFILE_COLUMNS = (
    "id, account_id, division_id, name, is_default, allow_read, allow_write, allow_renew,"
    " created_at, updated_at"
)
DIVISION_COLUMNS = "id, account_id, name, is_default, created_at, updated_at"
FIELD_COLUMNS = "id, profile_id, name, mandatory, position"
CERTIFICATE_COLUMNS = (
    "id, account_id, device_id, serial, fingerprint, public_key_hash, pem, not_before,"
    " not_after, issuer, created_at, revoked_at, revocation_reason, issued_by, parent_id"
)

# --- dialect F: devreg's sql.SELECT_DEVICE, update_device_statement({"reference_id"}),
# SELECT_DEVICE_ANY_STATUS (a cursor's anchor) and list_devices_query(cursor, "older")
SELECT_DEVICE = (
    f"SELECT {DEVICE_COLUMNS} FROM devices"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
)
UPDATE_REFERENCE = (
    "UPDATE devices SET reference_id = ?, version = version + 1, updated_at = ?"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
    f" RETURNING {DEVICE_COLUMNS}"
)
SELECT_DEVICE_ANY_STATUS = (
    f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ? AND account_id = ? AND live_mode = ?"
)
LIST_OLDER = (
    f"SELECT {DEVICE_COLUMNS} FROM devices"
    " WHERE account_id = ? AND live_mode = ? AND status <> 'DELETED'"
    " AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?"
)

# --- dialect D over mTLS: the certificate, the device, its profile, division, fields and
# values; the device's own PUT (update_device_statement({"device_identifier",
# "last_seen"}, writable_only=True) then the destructive values) and its GET's last_seen.
SELECT_CERTIFICATE = f"SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE fingerprint = ?"
SELECT_DEVICE_BY_ID = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ? AND status <> 'DELETED'"
SELECT_PROFILE = f"SELECT {PROFILE_COLUMNS} FROM device_profiles WHERE account_id = ? AND id = ?"
SELECT_FIELDS_OF_ONE = (
    f"SELECT {FIELD_COLUMNS} FROM profile_fields WHERE profile_id IN (?) ORDER BY position, id"
)
SELECT_DIVISION = f"SELECT {DIVISION_COLUMNS} FROM divisions WHERE account_id = ? AND id = ?"
SELECT_VALUES_OF_ONE = (
    "SELECT device_id, field_id, value FROM device_field_values WHERE device_id IN (?)"
)
UPDATE_BY_DEVICE = (
    "UPDATE devices SET device_identifier = ?, last_seen = ?, version = version + 1,"
    " updated_at = ?"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
    f" AND status = 'ACTIVE' AND allow_write = ? RETURNING {DEVICE_COLUMNS}"
)
DELETE_VALUES = "DELETE FROM device_field_values WHERE device_id = ?"
INSERT_VALUE = "INSERT INTO device_field_values (device_id, field_id, value) VALUES (?, ?, ?)"
TOUCH_LAST_SEEN = "UPDATE devices SET last_seen = ? WHERE id = ? AND status <> 'DELETED'"

# --- the change log, written in the PATCH's transaction as devreg's store does it
# (storage/base.py update_device + _logged, storage/change_log.py append): the device
# (any status) and its values for the entry's `before`, the UPDATE, then the head's next
# seq, the entry (SHA-256 chain) and the head moved to it.
SELECT_ANY_DEVICE_BY_ID = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN (?)"
CHANGE_COLUMNS = (
    "seq, time, account_id, live_mode, actor_kind, actor_id, request_id, action,"
    " object_type, object_id, object_version, before, after, prev_hash, hash"
)
TAKE_CHANGE_SEQ = "UPDATE change_head SET seq = seq + ? WHERE one = 1 RETURNING seq, time, hash"
INSERT_CHANGE = (
    f"INSERT INTO change_log ({CHANGE_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MOVE_CHANGE_HEAD = "UPDATE change_head SET time = ?, hash = ? WHERE one = 1"
# What the history and as-of reads run (benchmarks/change_log.py seeds for them).
SELECT_OBJECT_HISTORY_SEQS = (
    "SELECT seq FROM change_log WHERE object_id = ? ORDER BY time DESC, seq DESC LIMIT ? OFFSET ?"
)
SELECT_OBJECT_HISTORY = (
    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq IN ({SELECT_OBJECT_HISTORY_SEQS})"
    " ORDER BY time DESC, seq DESC"
)
SELECT_OBJECT_AS_OF = (
    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE object_id = ? AND time <= ?"
    " ORDER BY time DESC, seq DESC LIMIT 1"
)


def numbered(statement: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...` (as devreg's PostgreSQL store does)."""
    parts = statement.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
