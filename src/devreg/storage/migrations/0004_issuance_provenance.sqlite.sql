-- Which credential authorised each certificate: issued_by names it ("api_key:<id>",
-- "certificate:<id>", "enrollment_secret:<id>", "operator"); parent_id is the certificate
-- that authenticated a re-enrollment or renewal, so that revoking it for keyCompromise
-- revokes what it minted. Older certificates have neither.
ALTER TABLE certificates ADD COLUMN issued_by TEXT;
ALTER TABLE certificates ADD COLUMN parent_id BLOB;
CREATE INDEX certificates_parent ON certificates (parent_id) WHERE parent_id IS NOT NULL;
-- Active certificates per device are capped: counted by device among the unrevoked.
CREATE INDEX certificates_device_active ON certificates (device_id, not_after)
    WHERE revoked_at IS NULL;
-- Enrollment secrets can be revoked (or replaced by a newer one), and are capped per
-- account: the account is kept on the secret so the count needs no join.
ALTER TABLE enrollment_secrets ADD COLUMN revoked_at INTEGER;
ALTER TABLE enrollment_secrets ADD COLUMN account_id BLOB;
UPDATE enrollment_secrets SET account_id = (
    SELECT devices.account_id FROM devices WHERE devices.id = enrollment_secrets.device_id
);
CREATE INDEX enrollment_secrets_outstanding ON enrollment_secrets (account_id, expires_at)
    WHERE used_at IS NULL AND revoked_at IS NULL;
CREATE INDEX enrollment_secrets_device ON enrollment_secrets (device_id)
    WHERE used_at IS NULL AND revoked_at IS NULL;
