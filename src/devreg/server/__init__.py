"""The ASGI application, its configuration and the process that serves it."""
