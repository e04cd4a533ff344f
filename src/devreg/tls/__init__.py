"""TLS for devreg's listeners: the server certificate, the client-certificate (mTLS)
listener's context and protocol, client certificates forwarded by a trusted proxy, and the
one accessor handlers use (`client_cert.peer_certificate`)."""
