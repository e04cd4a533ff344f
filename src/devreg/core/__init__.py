"""The domain core: records, rules and use cases. No HTTP, no SQL."""
