"""X-Request-Id: the client's, when it is a plain token, else one made here; echoed on
every answer, written in the access log and in every change log entry the request makes."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable

HEADER = b"x-request-id"
MAX_LENGTH = 128
# What a proxy or client library sends (UUIDs, hex, base64url, "abc-123.4"): no spaces,
# quotes or controls, so it can go into a log line or a header unescaped.
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:+/=@-]{1,%d}" % MAX_LENGTH)
# A request id must be unique, not secret: a generator seeded once from the OS (again in
# each forked worker) makes one without a system call per request, which in a busy server
# costs a turn of the GIL to the commit thread.
_ids = random.Random()  # noqa: S311 - unique, not secret (above)
os.register_at_fork(after_in_child=_ids.seed)


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The first X-Request-Id if it is acceptable, else a new one (`req_` + 32 hex)."""
    for key, value in headers:
        if key == HEADER:
            if _ACCEPTED.fullmatch(value):
                return value.decode("ascii")
            break
    return f"req_{_ids.getrandbits(128):032x}"
