-- Issue 15 (access): keys with a name, a scope, optional divisions and expiry; accounts
-- that can be disabled; and the access mark, moved by the database itself in the same
-- transaction as any change that may refuse a credential held in a process's cache.
-- The keys made before this migration are `devreg account create`'s two: `default`, write.
ALTER TABLE accounts ADD COLUMN disabled_at BIGINT;
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'write'
    CHECK (scope IN ('read', 'write'));
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN rotated_from BYTEA REFERENCES api_keys (id);
-- A key limited to divisions has rows here (fixed when it is made); one without, all.
CREATE TABLE api_key_divisions (
    key_id       BYTEA NOT NULL REFERENCES api_keys (id),
    division_id  BYTEA NOT NULL REFERENCES divisions (id),
    PRIMARY KEY (key_id, division_id)
);
CREATE TABLE access_mark (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO access_mark (id, generation) VALUES (1, 0);
CREATE FUNCTION access_mark_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_mark SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
-- Deferred to the commit, as the revocation mark's (0003): the mark's row lock is the last
-- one its transaction takes (after a group-commit batch's change log head).
CREATE CONSTRAINT TRIGGER api_keys_access_updated
    AFTER UPDATE OF revoked_at, expires_at, scope ON api_keys DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
        OR NEW.expires_at IS DISTINCT FROM OLD.expires_at OR NEW.scope IS DISTINCT FROM OLD.scope)
    EXECUTE FUNCTION access_mark_move();
CREATE CONSTRAINT TRIGGER api_keys_access_deleted
    AFTER DELETE ON api_keys DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION access_mark_move();
CREATE CONSTRAINT TRIGGER accounts_access_updated
    AFTER UPDATE OF disabled_at ON accounts DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.disabled_at IS DISTINCT FROM OLD.disabled_at)
    EXECUTE FUNCTION access_mark_move();
