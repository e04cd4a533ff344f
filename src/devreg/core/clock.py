"""Time as integer microseconds since the epoch (UTC): exact, sortable, the same in every store."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_us() -> int:
    return time.time_ns() // 1000


def render_rfc3339(us: int) -> str:
    """Seconds precision with a `Z`, as both seeds print times: `2022-03-22T11:12:21Z`."""
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
