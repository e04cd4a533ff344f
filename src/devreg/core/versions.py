"""Dialect F's API versions: which are served, in what order, and which one a request gets.

Flatpeak names a version `YYYY-MM-DD.name`; each account has a default, and a request may
ask for another with a header, but never for one older than the account's default."""

from __future__ import annotations

from devreg.core.errors import InvalidInput

ZERO = "2024-08-24.zero"
ANODE = "2025-09-14.anode"
SERVED = (ZERO, ANODE)  # oldest first: the order is the comparison
DEFAULT_VERSION = ANODE  # of an account made without naming one


class VersionRefused(InvalidInput):
    """A requested version that is not served, or older than the account's default."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "Flatpeak-Version")


def check_served(version: str) -> str:
    """`version`, if devreg serves it (for an account's default, set by the operator)."""
    if version not in SERVED:
        raise VersionRefused(
            f"API version {version[:64]!r} is not served: devreg serves " + " and ".join(SERVED)
        )
    return version


def version_for(requested: str | None, default: str) -> str:
    """The version a request is answered in: the one it asked for, else the account's."""
    if requested is None or requested == default:
        return default
    check_served(requested)
    if SERVED.index(requested) < SERVED.index(default):
        raise VersionRefused(
            f"Requested API version {requested} older than account default {default}"
        )
    return requested
