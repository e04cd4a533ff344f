"""Times are integer microseconds (UTC) inside, `YYYY-MM-DDTHH:MM:SSZ` outside."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from devreg.core.clock import datetime_of_us, now_us, render_rfc3339, us_of_datetime

SEED_EXAMPLE = 1_647_947_541  # 2022-03-22T11:12:21Z, as printed in seed 003


def test_now_us_is_integer_microseconds_of_the_wall_clock() -> None:
    before = time.time_ns() // 1000
    value = now_us()
    after = time.time_ns() // 1000
    assert isinstance(value, int)
    assert before <= value <= after


def test_now_us_never_goes_backwards_between_calls() -> None:
    values = [now_us() for _ in range(1000)]
    assert values == sorted(values)


def test_render_rfc3339_matches_the_seed_format() -> None:
    assert render_rfc3339(SEED_EXAMPLE * 1_000_000) == "2022-03-22T11:12:21Z"


def test_render_rfc3339_truncates_sub_second_part() -> None:
    assert render_rfc3339(SEED_EXAMPLE * 1_000_000 + 999_999) == "2022-03-22T11:12:21Z"


def test_render_rfc3339_is_utc_whatever_the_local_zone() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        assert render_rfc3339(0) == "1970-01-01T00:00:00Z"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_render_rfc3339_parses_back_to_the_same_second() -> None:
    us = now_us()
    rendered = render_rfc3339(us)
    parsed = datetime.strptime(rendered, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(parsed.timestamp()) == us // 1_000_000


def test_exact_times_round_trip_through_datetimes_to_the_microsecond() -> None:
    for us in (0, 1, SEED_EXAMPLE * 1_000_000 + 123_456, -1_500_000, 253_402_300_799_999_999):
        moment = datetime_of_us(us)
        assert moment.tzinfo is UTC
        assert us_of_datetime(moment) == us
    assert datetime_of_us(SEED_EXAMPLE * 1_000_000 + 5) == datetime(
        2022, 3, 22, 11, 12, 21, 5, tzinfo=UTC
    )
