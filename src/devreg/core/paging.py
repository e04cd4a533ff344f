"""Dialect D's offset/limit paging, the same for every list (devices, device profiles,
divisions, a device's certificates)."""

from __future__ import annotations

from devreg.core.errors import InvalidInput

MAX_LIST_PAGE = 1000
DEFAULT_LIST_PAGE = 20  # seed 003's default


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIST_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_PAGE}", "limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", "offset")
