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
from tests.support.server import DEVREG, RunningServer, create_account, start_server

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


def _import(server: RunningServer, account_id: str, path: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [DEVREG, "import", "devices", str(path), "--account", account_id],
        env=server.env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def run(server: RunningServer, devices: int, large: int, tmp: Path) -> None:
    """One account with `devices` small devices (the total, the identifier lookup), another
    with `large` devices of 100 values of 1 KiB (the page, /healthz)."""
    many = create_account(server, "many")
    heavy = create_account(server, "heavy")
    many_key = {"x-api-key": many["live_key"]}
    key = {"x-api-key": heavy["live_key"]}
    base = server.base_url + "/iot/api/v2"
    client = httpx.Client(timeout=120)
    fields = [{"name": f"f{n}", "mandatory": False} for n in range(FIELDS)]
    body = {"name": "big", "fields": fields}
    profile = client.post(base + "/device-profile", headers=key, json=body)
    assert profile.status_code == 201, profile.text
    small_lines, large_lines = tmp / "small.jsonl", tmp / "large.jsonl"
    with small_lines.open("w") as out:
        for n in range(devices):
            out.write(f'{{"device_identifier": "id-{n}", "live_mode": true}}\n')
    with large_lines.open("w") as out:
        big = [{"name": f"f{n}", "value": VALUE} for n in range(FIELDS)]
        for n in range(large):
            line = {"device_identifier": f"large-{n}", "live_mode": True,
                    "device_profile": {"name": "big"}, "fields": big}  # fmt: skip
            out.write(json.dumps(line) + "\n")
    seconds = _import(server, many["account_id"], small_lines)
    print(f"imported {devices} small devices in {seconds:.1f} s")
    # A small division (10 devices) beside them.
    division = client.post(base + "/division", headers=many_key, json={"name": "small"}).json()
    small = {"name": "small", "division_id": division["id"]}
    assert client.post(base + "/device-profile", headers=many_key, json=small).status_code == 201
    few = tmp / "few.jsonl"
    few.write_text(
        "".join(f'{{"device_identifier": "few-{n}", "device_profile": {{"name": "small"}}}}\n'
                for n in range(10))
    )  # fmt: skip
    _import(server, many["account_id"], few)
    seconds = _import(server, heavy["account_id"], large_lines)
    print(f"imported {large} large devices in {seconds:.1f} s")
    first = base + "/device?limit=1"
    for _ in range(3):
        client.get(first, headers=many_key)
    print(f"GET /device?limit=1 ({devices}): {_median_ms(client, first, many_key, 20):.1f} ms")
    lookup = base + f"/device?limit=1&device_identifier=id-{devices // 2}"
    print(f"GET /device?device_identifier=...: {_median_ms(client, lookup, many_key, 20):.1f} ms")
    in_division = base + f"/device?limit=20&division_id={division['id']}"
    ms = _median_ms(client, in_division, many_key, 20)
    print(f"GET /device?division_id=<10 of them>: {ms:.1f} ms")
    small_page = base + "/device?limit=1000&offset=1000"
    ms = _median_ms(client, small_page, many_key, 10)
    size = len(client.get(small_page, headers=many_key).content)
    print(f"GET /device?limit=1000 of small devices: {size / 1e3:.0f} kB, {ms:.1f} ms")
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
    for name, quantile in (("p50", 4), ("p90", 8)):
        at_idle = statistics.quantiles(idle, n=10)[quantile]
        at_busy = statistics.quantiles(busy, n=10)[quantile]
        print(
            f"/healthz {name} idle {at_idle:.2f} ms, with two clients looping on limit=1000"
            f" {at_busy:.1f} ms (ratio {at_busy / at_idle:.0f})"
        )


if __name__ == "__main__":
    main()
