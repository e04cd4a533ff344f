"""Authentication: API keys, the bearer tokens they are exchanged for, and rate limits."""
