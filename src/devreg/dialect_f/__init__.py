"""Dialect F: the Flatpeak shape of seed 000 (bearer tokens, `dev_` ids, error objects)."""
