"""The PKI core: devreg's CA, certificate issuing and key policy. No HTTP, no storage:
the dialects and the TLS listener call it (as step-ca keeps its CA apart from its APIs)."""
