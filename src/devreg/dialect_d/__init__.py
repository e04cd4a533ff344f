"""Dialect D: the DigiCert IoT Device Manager shape of seed 003 (x-api-key, UUIDs, mTLS)."""
