"""Anonymous CRL fetchers against authenticated latency, on a real `devreg serve` (SQLite)
holding many certificates (seeded straight into the database):

    .venv/bin/python -m benchmarks.crl_fetchers [--certificates N] [--revoked N]
        [--fetchers 4] [--rate-limit 0] [--samples 300]

Prints an authenticated request's p50 and p95 (dialect D `GET /division`, x-api-key) alone and
while `--fetchers` clients loop on `GET /crl.der`, and what the fetchers were answered.
`--rate-limit 0` (the default here) turns every limit off, the CRL fetches' too, to show
the cost of a fetch itself; with the default limits the fetchers mostly get 429.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.reliability.support import make_d_device, new_tenant, raw_id
from tests.support.server import start_server

from benchmarks.certificates_seed import seed_certificates
from devreg.core.clock import now_us
from devreg.core.ids import parse_prefixed


def latency_ms(client: httpx.Client, headers: dict[str, str], samples: int) -> str:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get("/iot/api/v2/division", headers=headers)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        times.append(time.perf_counter() - started)
    times.sort()
    p50, p95 = times[len(times) // 2], times[len(times) * 95 // 100]
    return f"p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--certificates", type=int, default=305_000)
    parser.add_argument("--revoked", type=int, default=5_000)
    parser.add_argument("--fetchers", type=int, default=4)
    parser.add_argument("--rate-limit", default="0")
    parser.add_argument("--samples", type=int, default=300, help="under 100 with limits on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", rate_limit=args.rate_limit)
        try:
            tenant = new_tenant(server)
            device = raw_id(make_d_device(server, tenant, "crl-fetchers"))
            account = parse_prefixed("acc", tenant.account_id)
            assert account is not None
            asyncio.run(
                seed_certificates(
                    None, server.data_dir, account, device, revoked=args.revoked,
                    unrevoked=args.certificates - args.revoked, now=now_us(),
                )
            )  # fmt: skip
            headers = {"x-api-key": tenant.key}
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                assert client.get("/crl.der").status_code in (200, 429)  # built once
                alone = latency_ms(client, headers, args.samples)
                stop, answered = threading.Event(), collections.Counter[int]()

                def fetch() -> None:
                    with httpx.Client(base_url=server.base_url, timeout=60) as fetcher:
                        while not stop.is_set():
                            answered[fetcher.get("/crl.der").status_code] += 1

                threads = [threading.Thread(target=fetch) for _ in range(args.fetchers)]
                for thread in threads:
                    thread.start()
                time.sleep(0.5)
                loaded = latency_ms(client, headers, args.samples)
                stop.set()
                for thread in threads:
                    thread.join()
            print(
                f"{args.certificates} certificates, {args.revoked} revoked, rate limit"
                f" {args.rate_limit}: authenticated {alone} alone;"
                f" {loaded} with {args.fetchers} CRL fetchers"
                f" (their answers: {dict(answered)})"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
