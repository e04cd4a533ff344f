"""The scenarios of issue 5: what each sends, to which side, and the target it is held to.

A `Side` is one of the two servers under comparison as the scenarios see it (devreg, or
its raw baseline): where to send plain HTTP, where nginx takes the mTLS requests, the
device ids, the credentials. Each scenario turns a side into a wrk `Load`; devreg and the
baseline get the same requests, with their own ids.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.nginx import TlsClient
from benchmarks.servers import Server
from benchmarks.wrk import CONNECTIONS, MAX_PATHS_IN_SCRIPT, Load

LIST_RATE = 200  # requests/s for the deep list page
LIST_DEPTH = 0.9  # the cursor: a device 90% of the way down the newest-first list
LIST_LIMIT = 30


@dataclass
class Side:
    name: str  # "devreg", "baseline", "baseline+log" or "devreg@REV" (run.py --against)
    server: Server  # answers plain HTTP (dialect F)
    base_url: str
    ids: list[str]  # dev_<hex>, oldest first
    token: str | None = None  # bearer token (devreg checks it; the baseline ignores it)
    tls_server: Server | None = None  # answers mTLS (devreg: the same process)
    tls_client: TlsClient | None = None  # nginx in front of tls_server
    mtls_device: tuple[str, str] | None = None  # (device UUID, field UUID)


@dataclass(frozen=True)
class Scenario:
    key: str  # for --only and the JSON
    name: str  # for the table
    store: str  # "sqlite" (one process, pinned) or "postgres" (2 workers, not pinned)
    load: Callable[[Side], Load]
    uses_tls: bool = False
    ratio_target: float | None = None  # devreg's req/s at least this share of the baseline's
    scale_target: float | None = None  # at the biggest scale, at least this share of 10k's
    p99_target_ms: float | None = None  # at the biggest scale (fixed-rate scenario)
    # issue 14: also run against the baseline that writes devreg's change log entry in the
    # UPDATE's transaction (BASELINE_CHANGE_LOG=1), and hold devreg to this share of it
    log_baseline: bool = False
    log_ratio_target: float | None = None
    # issue 15: with `run.py --against REV`, also run devreg at REV and hold the current
    # build to this share of it
    against_target: float | None = None


def spread(ids: list[str]) -> list[str]:
    """Up to MAX_PATHS_IN_SCRIPT ids spread over the whole table, in a random (but fixed)
    order: requests touch the whole index, not one warm corner of it."""
    step = max(1, len(ids) // MAX_PATHS_IN_SCRIPT)
    chosen = ids[::step][:MAX_PATHS_IN_SCRIPT]
    random.Random(5).shuffle(chosen)
    return chosen


def f_headers(side: Side) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Flatpeak-Version": "2025-09-14.anode"}
    if side.token:
        headers["Authorization"] = "Bearer " + side.token
    return headers


def f_patch(side: Side) -> Load:
    paths = [f"/devices/{i}" for i in spread(side.ids)]
    # a reference never used before (run tag + request number): the unique index never refuses
    tag = f"r{time.time_ns()}-"
    return Load(side.base_url, "PATCH", paths, f_headers(side), ('{"reference_id":"' + tag, '"}'))


def f_get(side: Side) -> Load:
    return Load(side.base_url, "GET", [f"/devices/{i}" for i in spread(side.ids)], f_headers(side))


def deep_cursor(ids: list[str]) -> str:
    """The device LIST_DEPTH of the way down the newest-first list (ids are oldest first)."""
    return ids[int(len(ids) * (1 - LIST_DEPTH))]


def f_list_deep(side: Side) -> Load:
    path = f"/devices?limit={LIST_LIMIT}&starting_after={deep_cursor(side.ids)}"
    # each connection waits CONNECTIONS/LIST_RATE s on average before each request:
    # LIST_RATE req/s in all (a little less: the answer's own time adds to each cycle)
    delay_ms = round(1000 * CONNECTIONS / LIST_RATE)
    return Load(side.base_url, "GET", [path], f_headers(side), delay_ms=delay_ms)


def _device_path(side: Side) -> str:
    assert side.mtls_device is not None
    return f"/iot/api/v2/device/{side.mtls_device[0]}"


def d_put_kept_alive(side: Side) -> Load:
    """Seed 003's PUT by the device itself: a new identifier-stable body, one field value
    (destructive: the old value is deleted, the new one written)."""
    assert side.tls_client is not None and side.mtls_device is not None
    head = (
        '{"device_identifier":"bench-device","fields":[{"id":"'
        + side.mtls_device[1]
        + '","value":"v'
    )
    headers = {"Content-Type": "application/json"}
    return Load(
        side.tls_client.kept_alive_url, "PUT", [_device_path(side)], headers, (head, '"}]}')
    )


def d_get_new_connection(side: Side) -> Load:
    """The device's GET, each on a new TLS connection (nginx: no pool, no resumption)."""
    assert side.tls_client is not None
    return Load(side.tls_client.new_connection_url, "GET", [_device_path(side)])


SCENARIOS = [
    # issue 14: >= 0.90 of the baseline without the log, >= 0.95 of the one with it (10k)
    Scenario("f-patch", "F PATCH /devices/{id}", "sqlite", f_patch, ratio_target=0.90,
             scale_target=0.80, log_baseline=True, log_ratio_target=0.95, against_target=0.95),
    # issue 15: a key's state checked on every request keeps F PATCH and GET within 5%
    Scenario("f-get", "F GET /devices/{id}", "sqlite", f_get, against_target=0.95),
    Scenario("d-put-mtls", "D PUT /iot/api/v2/device/{id} (mTLS, kept alive)", "sqlite",
             d_put_kept_alive, uses_tls=True, ratio_target=0.60, scale_target=0.80),
    Scenario("d-new-mtls", "D new mTLS connection + GET", "sqlite", d_get_new_connection,
             uses_tls=True, ratio_target=0.70, scale_target=0.80),
    Scenario("f-list-deep", f"F GET /devices?limit={LIST_LIMIT} deep, {LIST_RATE} req/s",
             "sqlite", f_list_deep, p99_target_ms=10.0),
    Scenario("pg-patch", "F PATCH /devices/{id}, PostgreSQL, 2 workers", "postgres", f_patch,
             ratio_target=0.60, log_baseline=True),
]  # fmt: skip


def selected(only: list[str]) -> list[Scenario]:
    """The scenarios whose key or name contains one of `only` (all when empty)."""
    if not only:
        return list(SCENARIOS)
    wanted = [o.lower() for o in only]
    return [s for s in SCENARIOS if any(w in s.key or w in s.name.lower() for w in wanted)]
