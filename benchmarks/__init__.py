"""The benchmark harness: devreg against a raw ASGI + sqlite3 baseline (issue 5)."""
