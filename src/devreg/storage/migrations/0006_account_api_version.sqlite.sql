-- Dialect F: each account's default API version (Flatpeak-Version), anode unless the
-- operator sets another (devreg account create --api-version, account set-version).
ALTER TABLE accounts ADD COLUMN api_version TEXT NOT NULL DEFAULT '2025-09-14.anode';
