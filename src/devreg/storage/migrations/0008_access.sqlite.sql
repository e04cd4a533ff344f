-- Issue 15 (access): keys with a name, a scope, optional divisions and expiry; accounts
-- that can be disabled; and the access mark, moved by the database itself in the same
-- transaction as any change that may refuse a credential held in a process's cache.
-- The keys made before this migration are `devreg account create`'s two: `default`, write.
ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'write'
    CHECK (scope IN ('read', 'write'));
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN rotated_from BLOB REFERENCES api_keys (id);
-- A key limited to divisions has rows here (fixed when it is made); one without, all.
CREATE TABLE api_key_divisions (
    key_id       BLOB NOT NULL REFERENCES api_keys (id),
    division_id  BLOB NOT NULL REFERENCES divisions (id),
    PRIMARY KEY (key_id, division_id)
);
CREATE TABLE access_mark (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO access_mark (id, generation) VALUES (1, 0);
CREATE TRIGGER api_keys_access_updated AFTER UPDATE OF revoked_at, expires_at, scope ON api_keys
    FOR EACH ROW WHEN NEW.revoked_at IS NOT OLD.revoked_at
        OR NEW.expires_at IS NOT OLD.expires_at OR NEW.scope IS NOT OLD.scope
BEGIN
    UPDATE access_mark SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER api_keys_access_deleted AFTER DELETE ON api_keys
BEGIN
    UPDATE access_mark SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER accounts_access_updated AFTER UPDATE OF disabled_at ON accounts
    FOR EACH ROW WHEN NEW.disabled_at IS NOT OLD.disabled_at
BEGIN
    UPDATE access_mark SET generation = generation + 1 WHERE id = 1;
END;
