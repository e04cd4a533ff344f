"""Dialect D's device list at scale (issue 12 item 8): the unfiltered total, an identifier
lookup without division_id, a page of large records, and /healthz while two clients loop
on such pages. Seeds with `devreg import devices` (one transaction), not HTTP calls.

    .venv/bin/python -m benchmarks.d_lists [--devices 600000] [--large 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.support.server import create_account, run_cli, start_server

FIELDS = 100
VALUE = "v" * 1024


def _timed(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, int, int]:
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    return (time.perf_counter() - started) * 1000, response.status_code, len(response.content)


def _median_ms(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> float:
    return statistics.median(_timed(client, url, headers)[0] for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=600_000)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = start_server(data, database_url=args.database_url, rate_limit=0, access_log=0)
        try:
            run(server, args.devices, args.large, Path(tmp))
        finally:
            server.stop()


def run(server: object, devices: int, large: int, tmp: Path) -> None:
    from tests.support.server import RunningServer

    assert isinstance(server, RunningServer)
    made = create_account(server, "lists")
    key = {"x-api-key": made["live_key"]}
    base = server.base_url + "/iot/api/v2"
    client = httpx.Client(timeout=120)
    fields = [{"name": f"f{n}", "mandatory": False} for n in range(FIELDS)]
    body = {"name": "big", "fields": fields}
    profile = client.post(base + "/device-profile", headers=key, json=body)
    assert profile.status_code == 201, profile.text
    lines = tmp / "devices.jsonl"
    with lines.open("w") as out:
        big = [{"name": f"f{n}", "value": VALUE} for n in range(FIELDS)]
        for n in range(large):
            line = {"device_identifier": f"large-{n}", "live_mode": True,
                    "device_profile": {"name": "big"}, "fields": big}  # fmt: skip
            out.write(json.dumps(line) + "\n")
        for n in range(devices):
            out.write(f'{{"device_identifier": "id-{n}", "live_mode": true}}\n')
    started = time.monotonic()
    done = run_cli(server.env, "import", "devices", str(lines), "--account", made["account_id"])
    assert done.returncode == 0, done.stderr
    print(f"seeded {devices + large} devices in {time.monotonic() - started:.1f} s")
    for _ in range(3):
        client.get(base + "/device?limit=1", headers=key)
    print(f"GET /device?limit=1: {_median_ms(client, base + '/device?limit=1', key, 20):.1f} ms")
    lookup = base + f"/device?limit=1&device_identifier=id-{devices // 2}"
    print(f"GET /device?device_identifier=...: {_median_ms(client, lookup, key, 20):.1f} ms")
    page = base + "/device?limit=1000"
    ms, status, size = _timed(client, page, key)
    records = len(client.get(page, headers=key).json()["records"])
    print(f"GET /device?limit=1000: {status}, {size / 1e6:.1f} MB, {records} records, {ms:.0f} ms")
    health = server.base_url + "/healthz"
    idle = [_timed(client, health, {})[0] for _ in range(200)]
    stop = threading.Event()

    def loop() -> None:  # curl, not httpx: a Python client would read 100 MB far slower
        while not stop.is_set():
            subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-H", f"x-api-key: {key['x-api-key']}", page],
                check=False,
            )

    loopers = [threading.Thread(target=loop) for _ in range(2)]
    for thread in loopers:
        thread.start()
    time.sleep(1)
    busy = [_timed(client, health, {})[0] for _ in range(100)]
    stop.set()
    for thread in loopers:
        thread.join()
    p50_idle, p50_busy = statistics.median(idle), statistics.median(busy)
    print(
        f"/healthz p50 idle {p50_idle:.2f} ms, with two clients looping on limit=1000"
        f" {p50_busy:.1f} ms (ratio {p50_busy / p50_idle:.0f})"
    )


if __name__ == "__main__":
    main()
