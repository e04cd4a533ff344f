"""DigiCert ONE's error-handling page: 429 carries `Retry-After` (seconds)."""

from __future__ import annotations

from tests.conformance.conftest import LIMITED_BURST, LIMITED_RATE
from tests.dialect_d.helpers import assert_errors, new_account
from tests.support.server import RunningServer


def test_too_many_requests_carry_retry_after(limited_server: RunningServer) -> None:
    account = new_account(limited_server)
    try:
        for _ in range(LIMITED_BURST):
            assert account.live.get("/device").status_code == 200
        refused = account.live.get("/device")
    finally:
        account.close()
    assert_errors(refused, 429, "rate_limit_exceeded")
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 1 / LIMITED_RATE, retry_after
