"""Issue 12 item 8: two clients looping on `GET /iot/api/v2/device?limit=1000` over devices
with 100 values of 1 KiB each must not stall the process for everyone else. Measured as a
ratio of /healthz 90th percentiles in the same run (busy / idle), never as a time: the
stalls are what hurt, and before the byte cap each answer was 33 MB read and encoded inline
on the event loop (the median hides them: most of each request is spent sending)."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer, create_account, run_cli, start_server

LARGE_DEVICES = 300
FIELDS = 100
LOOPS = 1000  # requests per looping client at most
LOOP_SECONDS = 20  # and for this long at most
SAMPLES = 150
# p90 busy / idle on this shared 2-core machine: 109-1145 before, 2-37 after (two curl
# processes and the test share the cores with the server: the OS's time slices alone put
# the busy p90 near 10-20 ms).
MAX_RATIO = 60
IDLE_FLOOR_MS = 1.0  # a sub-millisecond idle p90 measures the client more than the server


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[RunningServer]:
    """SQLite: its reads run inline on the event loop, the case that stalled."""
    running = start_server(tmp_path / "data", rate_limit=0, access_log=0)
    try:
        yield running
    finally:
        running.stop()


def p50_p90_ms(
    client: httpx.Client, url: str, samples: int, going: Callable[[], bool] = lambda: True
) -> tuple[float, float]:
    """The median and 90th percentile of up to `samples` requests, taken while `going()`."""
    times = []
    for _ in range(samples):
        if not going():
            break
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append(time.perf_counter() - started)
        time.sleep(0.005)
    assert len(times) >= 10, f"only {len(times)} samples"
    deciles = statistics.quantiles(times, n=10)
    return statistics.median(times) * 1000, deciles[-1] * 1000


def test_healthz_stays_responsive_while_two_clients_loop_on_large_lists(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    made = create_account(server, "Load")
    key = made["live_key"]
    base = server.base_url + "/iot/api/v2"
    fields = [{"name": f"f{n}", "mandatory": False} for n in range(FIELDS)]
    created = httpx.post(
        base + "/device-profile", headers={"x-api-key": key}, json={"name": "big", "fields": fields}
    )
    assert created.status_code == 201, created.text
    values = [{"name": f"f{n}", "value": "v" * 1024} for n in range(FIELDS)]
    seed = server.data_dir.parent / "large.jsonl"
    with seed.open("w") as out:
        for n in range(LARGE_DEVICES):
            line = {"device_identifier": f"large-{n}", "device_profile": {"name": "big"},
                    "fields": values}  # fmt: skip
            out.write(json.dumps(line) + "\n")
    done = run_cli(server.env, "import", "devices", str(seed), "--account", made["account_id"])
    assert done.returncode == 0, done.stderr

    health = server.base_url + "/healthz"
    page = base + "/device?limit=1000"
    finished = threading.Event()
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            client.get(health)
        idle = p50_p90_ms(client, health, SAMPLES)
        deadline = time.monotonic() + LOOP_SECONDS

        def loop() -> None:  # curl reads 33 MB far faster than a Python client would
            for _ in range(LOOPS):
                if time.monotonic() > deadline or finished.is_set():
                    return
                subprocess.run(
                    ["curl", "-s", "-o", "/dev/null", "-H", f"x-api-key: {key}", page],
                    check=False,
                    timeout=LOOP_SECONDS,
                )

        loopers = [threading.Thread(target=loop) for _ in range(2)]
        for looper in loopers:
            looper.start()
        try:
            time.sleep(0.5)
            busy = p50_p90_ms(
                client, health, SAMPLES, lambda: all(looper.is_alive() for looper in loopers)
            )
        finally:
            finished.set()
            for looper in loopers:
                looper.join()
    ratio = busy[1] / max(idle[1], IDLE_FLOOR_MS)
    print(
        f"/healthz idle p50 {idle[0]:.2f} ms p90 {idle[1]:.2f} ms; with two clients looping on"
        f" limit=1000 p50 {busy[0]:.2f} ms p90 {busy[1]:.2f} ms: p90 ratio {ratio:.1f}"
    )
    assert ratio < MAX_RATIO, (idle, busy)
