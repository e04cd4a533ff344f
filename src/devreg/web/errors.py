"""Protocol-level failures (no route, wrong method, body too large) that each dialect
renders in its own envelope, like the domain errors."""

from __future__ import annotations


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: list[tuple[bytes, bytes]] = []


def payload_too_large(limit: int) -> HttpError:
    error = HttpError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
    # The rest of the body is not read: the connection ends with the answer.
    error.headers.append((b"connection", b"close"))
    return error


def method_not_allowed(method: str, allowed: list[str]) -> HttpError:
    error = HttpError(405, "method_not_allowed", f"Method {method} is not allowed here")
    error.headers.append((b"allow", ", ".join(sorted(allowed)).encode()))
    return error
