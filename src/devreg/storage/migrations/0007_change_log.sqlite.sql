-- The change log (issue 14): one append-only entry per change, written in the
-- transaction of the change. `seq` has no gaps and `time` (µs) never goes back as seq
-- grows: both come from the one-row change_head, updated in the same transaction (its
-- row lock orders writers on PostgreSQL; SQLite has one writer at a time anyway).
-- `hash` = SHA-256(prev_hash || the entry's canonical content): see changelog/chain.py.
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
-- A device's history (newest first) and an "as of" read: one seek each.
CREATE INDEX change_log_object ON change_log (object_id, time, seq);
-- The account's log, by seq.
CREATE INDEX change_log_account ON change_log (account_id, seq);
-- The chain's head, and where pruning stopped (the oldest kept entry's prev_hash must be
-- pruned_hash, its seq pruned_seq + 1).
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
