"""The `devreg` command line."""
