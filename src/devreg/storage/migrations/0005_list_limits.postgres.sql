-- Dialect D's list filter on device_identifier alone (no division_id): one index lookup
-- instead of a scan of the account's devices. In the list's order, so that SQLite (which
-- keeps no statistics) does not prefer walking devices_listing to skip a sort.
CREATE INDEX devices_identifier_lookup
    ON devices (account_id, live_mode, device_identifier, created_at, id)
    WHERE device_identifier IS NOT NULL AND status <> 'DELETED';
-- The same for its division_id and device_profile_id filters (a small division of a big
-- account was a walk over all of the account's devices).
CREATE INDEX devices_division_listing
    ON devices (account_id, live_mode, division_id, created_at, id) WHERE status <> 'DELETED';
CREATE INDEX devices_profile_listing
    ON devices (account_id, live_mode, profile_id, created_at, id) WHERE status <> 'DELETED';
-- Non-deleted devices per account and mode, kept in the transaction of every insert and
-- delete, so the list's total and the device quota need no COUNT(*). Spread over slots
-- (chosen by the device id) so that concurrent creates in one account do not all wait for
-- one row's lock; the count is the sum of an account's rows.
CREATE TABLE device_counts (
    account_id  BYTEA NOT NULL REFERENCES accounts (id),
    live_mode   BOOLEAN NOT NULL,
    slot        INTEGER NOT NULL,
    devices     BIGINT NOT NULL,
    PRIMARY KEY (account_id, live_mode, slot)
);
INSERT INTO device_counts (account_id, live_mode, slot, devices)
    SELECT account_id, live_mode, 0, COUNT(*) FROM devices WHERE status <> 'DELETED'
    GROUP BY account_id, live_mode;
