-- The CRL's "is it stale" mark: one row, moved by the database itself in the same
-- transaction as any change to a certificate's revocation, whichever statement makes it.
-- Every CRL fetch reads it by primary key instead of counting the revoked certificates.
CREATE TABLE revocation_mark (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    generation         BIGINT NOT NULL,
    latest_revoked_at  BIGINT
);
INSERT INTO revocation_mark (id, generation, latest_revoked_at)
    SELECT 1, COUNT(*), MAX(revoked_at) FROM certificates WHERE revoked_at IS NOT NULL;
CREATE FUNCTION revocation_mark_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- NEW is NULL for a DELETE; GREATEST ignores NULLs.
    UPDATE revocation_mark SET generation = generation + 1,
        latest_revoked_at = GREATEST(latest_revoked_at, NEW.revoked_at)
        WHERE id = 1;
    RETURN NULL;
END
$$;
-- Deferred to the commit: the mark's row lock is then the last lock a revoking transaction
-- takes, so two transactions revoking several certificates cannot deadlock over it.
CREATE CONSTRAINT TRIGGER certificates_revocation_updated
    AFTER UPDATE OF revoked_at ON certificates DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at)
    EXECUTE FUNCTION revocation_mark_move();
CREATE CONSTRAINT TRIGGER certificates_revocation_inserted
    AFTER INSERT ON certificates DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION revocation_mark_move();
CREATE CONSTRAINT TRIGGER certificates_revocation_deleted
    AFTER DELETE ON certificates DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION revocation_mark_move();
-- The CRL reads the revoked certificates in pages of this order from this index alone (it
-- holds every column the CRL needs), never the unrevoked ones (most of the table).
CREATE INDEX certificates_revoked
    ON certificates (issuer, revoked_at, id, serial, not_after, revocation_reason)
    WHERE revoked_at IS NOT NULL;
