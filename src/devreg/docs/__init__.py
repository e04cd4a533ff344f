"""Vendored assets of the docs page."""
