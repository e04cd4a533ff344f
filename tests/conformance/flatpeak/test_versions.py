"""Flatpeak's versioning page: an account default, the `Flatpeak-Version` header to ask for
another per request, the version used named on every answer, and 422 for one that is older
than the default or not served."""

from __future__ import annotations

import json

import httpx

from tests.conformance.conftest import Vendors
from tests.conformance.flatpeak.test_devices import error_of
from tests.dialect_f.helpers import bearer_client, login
from tests.support.server import run_cli

ZERO, ANODE = "2024-08-24.zero", "2025-09-14.anode"


def test_every_answer_names_the_version_used(vendors: Vendors) -> None:
    live = vendors.f_live
    made = live.post("/devices", json={"reference_id": "V1"})
    answers = [
        made,
        live.get("/devices"),
        live.get(f"/devices/{made.json()['id']}"),
        live.get("/devices/dev_" + "0" * 32),  # an error too
        httpx.get(
            vendors.server.base_url + "/login", auth=(vendors.d.account_id, vendors.d.live_key)
        ),
    ]
    for answer in answers:
        assert answer.headers["flatpeak-version"] == ANODE, (answer.url, answer.headers)
    asked = live.patch(
        f"/devices/{made.json()['id']}", json={}, headers={"Flatpeak-Version": ANODE}
    )
    assert asked.status_code == 200 and asked.headers["flatpeak-version"] == ANODE


def test_a_version_older_than_the_default_is_refused(vendors: Vendors) -> None:
    older = vendors.f_live.get("/devices", headers={"Flatpeak-Version": ZERO})
    body = error_of(older, 422, "invalid_request", "api_version_not_supported")
    assert body["message"] == f"Requested API version {ZERO} older than account default {ANODE}"
    assert body["context"] == "api" and body["live_mode"] is True
    # an account whose default is zero is served zero, and may ask for anode (an upgrade)
    done = run_cli(vendors.server.env, "account", "create", "--name", "Old", "--api-version",
                   ZERO, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    with httpx.Client(base_url=vendors.server.base_url) as anon:
        token = login(anon, made["account_id"], made["live_key"])
    with bearer_client(vendors.server, token) as old:
        assert old.get("/devices").headers["flatpeak-version"] == ZERO
        upgraded = old.get("/devices", headers={"Flatpeak-Version": ANODE})
        assert upgraded.status_code == 200 and upgraded.headers["flatpeak-version"] == ANODE


def test_a_version_devreg_does_not_serve_is_refused(vendors: Vendors) -> None:
    before = vendors.f_live.get("/devices").json()["data"]
    for version in ("2026-01-01.busbar", "yotta", "2025-09-14", "not a version"):
        answer = vendors.f_live.post(
            "/devices", json={"reference_id": "never"}, headers={"Flatpeak-Version": version}
        )
        body = error_of(answer, 422, "invalid_request", "api_version_not_supported")
        assert ZERO in body["message"] and ANODE in body["message"], body
    assert vendors.f_live.get("/devices").json()["data"] == before
