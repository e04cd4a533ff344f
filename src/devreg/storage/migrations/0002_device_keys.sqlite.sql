-- One public key, one device: the database decides, also between concurrent requests.
CREATE TABLE device_keys (
    public_key_hash  BLOB PRIMARY KEY,
    device_id        BLOB NOT NULL REFERENCES devices (id)
);
-- Keys already recorded go to the device that got the first certificate for them.
INSERT INTO device_keys (public_key_hash, device_id)
    SELECT public_key_hash, device_id FROM certificates WHERE true ORDER BY created_at, id
    ON CONFLICT (public_key_hash) DO NOTHING;
