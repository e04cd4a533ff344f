"""EST (RFC 7030): enrollment protocol over the PKI core, on its own TLS listener."""
