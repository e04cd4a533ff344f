"""devreg: a self-hosted device registry and device-identity service."""

__version__ = "0.1.0"
