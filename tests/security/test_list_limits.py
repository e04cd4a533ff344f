"""Issue 12 item 8, over HTTP against the real server on both stores: dialect D's list
answers stay within MAX_LIST_BYTES however large the records (a smaller page), and a client
paging by offset reads every record exactly once; every D list (devices, profiles,
divisions, certificates) pages with offset/limit; per-account quotas are refused with a
409 in each dialect's envelope (and by the bulk import) and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devreg.core.paging import MAX_LIST_PAGE
from devreg.dialect_d.pages import MAX_LIST_BYTES
from tests.support.server import (
    RunningServer,
    create_account,
    login,
    run_cli,
    start_server,
)

BASE = "/iot/api/v2"
FIELDS = 100
VALUE = "v" * 1024  # the longest value a field may hold


def d_client(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url + BASE, headers={"x-api-key": key}, timeout=60)


def import_lines(server: RunningServer, account_id: str, lines: list[dict[str, Any]]) -> None:
    """Fast seeding: `devreg import devices`, one transaction."""
    path = server.data_dir.parent / "seed.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = run_cli(server.env, "import", "devices", str(path), "--account", account_id)
    assert done.returncode == 0, done.stderr


def page_through(client: httpx.Client, path: str, limit: int) -> tuple[list[str], int, int]:
    """Every record's id, read the way a client pages: `offset += len(records)` until
    `offset >= total`; also the largest answer seen and how many pages it took."""
    ids: list[str] = []
    offset, total, largest, pages = 0, 1, 0, 0
    while offset < total and pages < 200:
        response = client.get(path, params={"limit": limit, "offset": offset})
        assert response.status_code == 200, response.text
        largest = max(largest, len(response.content))
        body = response.json()
        assert body["offset"] == offset and len(body["records"]) <= limit, body
        assert body["limit"] in (limit, len(body["records"])), body
        total = body["total"]
        ids += [r.get("id") or r.get("certificate_id") for r in body["records"]]
        offset += len(body["records"])
        pages += 1
        if not body["records"]:
            break
    return ids, largest, pages


def test_large_records_give_a_smaller_page_and_paging_reads_each_once(
    server: RunningServer,
) -> None:
    made = create_account(server, "Large")
    with d_client(server, made["live_key"]) as client:
        fields = [{"name": f"f{n}", "mandatory": False} for n in range(FIELDS)]
        profile = client.post("/device-profile", json={"name": "big", "fields": fields})
        assert profile.status_code == 201, profile.text
        big = [{"name": f"f{n}", "value": VALUE} for n in range(FIELDS)]
        lines: list[dict[str, Any]] = []
        for n in range(30):  # large and small records mixed: ~3.3 MB in all
            lines.append({"device_identifier": f"large-{n}", "device_profile": {"name": "big"},
                          "fields": big})  # fmt: skip
            lines.append({"device_identifier": f"small-{n}"})
        import_lines(server, made["account_id"], lines)

        whole = client.get("/device", params={"limit": MAX_LIST_PAGE})
        assert whole.status_code == 200
        assert len(whole.content) <= MAX_LIST_BYTES, len(whole.content)
        body = whole.json()
        assert body["total"] == 60 and 1 <= len(body["records"]) < 60
        assert body["limit"] == len(body["records"]), "a cut page says how many it holds"

        ids, largest, pages = page_through(client, "/device", MAX_LIST_PAGE)
        assert largest <= MAX_LIST_BYTES and pages > 3
        names = [client.get(f"/device/{i}").json()["device_identifier"] for i in ids]
        assert sorted(names) == sorted(line["device_identifier"] for line in lines)
        assert len(set(ids)) == len(ids) == 60
        # Small records: the page is what was asked for.
        small = client.get("/device", params={"limit": 3, "offset": 1}).json()
        assert (small["limit"], small["offset"], len(small["records"])) == (3, 1, 3)

        # Profiles are bounded the same way: 60 of ~25 KB each.
        long_fields = [{"name": f"{n:03d}" + "n" * 197} for n in range(FIELDS)]
        for n in range(60):
            made_profile = client.post(
                "/device-profile", json={"name": f"wide-{n}", "fields": long_fields}
            )
            assert made_profile.status_code == 201, made_profile.text
        listed = client.get("/device-profile", params={"limit": MAX_LIST_PAGE})
        assert len(listed.content) <= MAX_LIST_BYTES and listed.json()["total"] == 62
        ids, largest, _ = page_through(client, "/device-profile", MAX_LIST_PAGE)
        assert largest <= MAX_LIST_BYTES and len(set(ids)) == len(ids) == 62


def test_every_list_pages_with_offset_and_limit(server: RunningServer) -> None:
    made = create_account(server, "Paged")
    with d_client(server, made["live_key"]) as client:
        for n in range(4):
            assert client.post("/division", json={"name": f"div-{n}"}).status_code == 201
            created = client.post("/device-profile", json={"name": f"prof-{n}"})
            assert created.status_code == 201
        device = client.post("/device", json={"device_identifier": "certified"}).json()
        for _ in range(3):
            issued = client.post(f"/device/{device['id']}/certificate", json={"generate_key": True})
            assert issued.status_code == 201, issued.text
        lists = {
            "/division": 5,
            "/device-profile": 5,
            f"/device/{device['id']}/certificate": 3,
            "/device": 1,
        }
        for path, count in lists.items():
            everything = client.get(path, params={"limit": MAX_LIST_PAGE}).json()
            assert everything["total"] == count and len(everything["records"]) == count, path
            ids, _, pages = page_through(client, path, 2)
            key = "certificate_id" if "certificate" in path else "id"
            assert ids == [r[key] for r in everything["records"]], path
            assert pages == (count + 1) // 2, path
            first = client.get(path).json()  # seed 003's defaults
            assert (first["limit"], first["offset"]) == (20, 0), path
            for bad in (
                {"limit": 0},
                {"limit": MAX_LIST_PAGE + 1},
                {"offset": -1},
                {"limit": "x"},
                {"colour": "red"},
            ):
                refused = client.get(path, params=bad)
                assert refused.status_code == 400, (path, bad, refused.text)
                assert refused.json()["errors"][0]["code"] == "invalid_input", refused.text


@pytest.fixture
def limited(backend: str | None, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path / "data", database_url=backend, rate_limit=0,
        max_devices=3, max_profiles=2, max_divisions=2,
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def assert_d_quota(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "quota_exceeded" and "at most" in error["message"], error


def test_quotas_refused_in_each_dialect_and_by_the_import(limited: RunningServer) -> None:
    made = create_account(limited, "Quota")
    token = login(limited, made["account_id"], made["live_key"])
    f_headers = {"authorization": f"Bearer {token}"}
    with d_client(limited, made["live_key"]) as d, httpx.Client(base_url=limited.base_url) as f:
        first = d.post("/device", json={"device_identifier": "d-1"})
        assert first.status_code == 201
        assert d.post("/device", json={"device_identifier": "d-2"}).status_code == 201
        made_f = f.post("/devices", json={"reference_id": "f-1"}, headers=f_headers)
        assert made_f.status_code == 201, made_f.text

        assert_d_quota(d.post("/device", json={"device_identifier": "d-3"}))
        refused = f.post("/devices", json={"reference_id": "f-2"}, headers=f_headers)
        assert refused.status_code == 409, refused.text
        error = refused.json()
        assert (error["object"], error["code"]) == ("error", "quota_exceeded"), error
        path = limited.data_dir.parent / "more.jsonl"
        path.write_text('{"reference_id": "imported"}\n')
        done = run_cli(limited.env, "import", "devices", str(path), "--account", made["account_id"])
        assert done.returncode == 1 and "at most 3 devices" in done.stderr, done.stderr

        listed = d.get("/device", params={"limit": 10}).json()
        assert listed["total"] == 3 and len(listed["records"]) == 3, "a refused create wrote"
        assert (
            f.get("/devices", params={"reference_id": "f-2"}, headers=f_headers).json()["data"]
            == []
        )
        # Test mode has its own quota; deleting a device frees its place.
        with d_client(limited, made["test_key"]) as test_mode:
            assert test_mode.post("/device", json={"device_identifier": "t"}).status_code == 201
        assert d.delete(f"/device/{first.json()['id']}").status_code == 200
        assert d.post("/device", json={"device_identifier": "d-3"}).status_code == 201

        # The default division and profile count: one more of each.
        assert d.post("/division", json={"name": "North"}).status_code == 201
        assert_d_quota(d.post("/division", json={"name": "South"}))
        assert d.post("/device-profile", json={"name": "Meter"}).status_code == 201
        assert_d_quota(d.post("/device-profile", json={"name": "Pump"}))
        assert d.get("/division").json()["total"] == 2
        assert d.get("/device-profile").json()["total"] == 2
