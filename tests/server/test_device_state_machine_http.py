"""A smaller state machine over real HTTP against a running `devreg serve`: random sequences
of dialect F (POST, PATCH, DELETE /devices) and dialect D (POST, PUT, disable, enable,
DELETE /iot/api/v2/device) on one account's live devices, with colliding references and
identifiers, against a plain model. After every step both dialects show the touched
device as the model has it (or both say it is gone, each in its own words), and F's
listing and D's query hold exactly the model's devices, in their orders.

The core's own, larger state machine: tests/core/test_device_state_machine.py. Longer runs:
DEVREG_PROPERTY_EXAMPLES / DEVREG_PROPERTY_STEPS (README)."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.dialect_d.helpers import d_client
from tests.dialect_f.helpers import bearer_client
from tests.support.server import RunningServer, create_account, login

EXAMPLES = int(os.environ.get("DEVREG_PROPERTY_EXAMPLES", "0") or 0)
STEPS = int(os.environ.get("DEVREG_PROPERTY_STEPS", "0") or 0)
REFERENCES = ["r1", "r1", "r2", "", "a\tb"]
IDENTIFIERS = ["d1", "d2", "d3", "d1", " "]
FLAGS = ("device_api_allow_read", "device_api_allow_write", "device_api_allow_renew_certificate")


@dataclass
class Known:
    hex: str  # the 128 bits: F shows dev_<hex>, D the UUID
    reference_id: str
    device_identifier: str
    status: str  # ACTIVE, DISABLED, DELETED
    flags: dict[str, bool]

    @property
    def f_id(self) -> str:
        return "dev_" + self.hex

    @property
    def d_id(self) -> str:
        return str(uuid.UUID(hex=self.hex))


@dataclass
class Clients:
    f: httpx.Client
    d: httpx.Client
    calls: Counter[str] = field(default_factory=Counter)  # "rule status" -> calls

    def count(self, rule: str, answer: httpx.Response) -> httpx.Response:
        self.calls[f"{rule} {answer.status_code}"] += 1
        return answer


class HttpDeviceMachine(RuleBasedStateMachine):
    clients: ClassVar[Clients]

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[Known] = []  # oldest first
        self.touched: Known | None = None

    def alive(self) -> list[Known]:
        return [d for d in self.devices if d.status != "DELETED"]

    def pick(self, index: int) -> Known | None:
        return self.devices[index % len(self.devices)] if self.devices else None

    def reference_taken(self, reference: str, by: Known | None) -> bool:
        return bool(reference) and any(
            d.reference_id == reference and d is not by for d in self.alive()
        )

    def identifier_taken(self, identifier: str, by: Known | None) -> bool:
        return any(d.device_identifier == identifier and d is not by for d in self.alive())

    # --- dialect F

    @rule(reference=st.sampled_from(REFERENCES))
    def f_create(self, reference: str) -> None:
        answer = self.clients.count(
            "f_create", self.clients.f.post("/devices", json={"reference_id": reference})
        )
        if "\t" in reference:
            assert answer.status_code == 400, answer.text
        elif self.reference_taken(reference, None):
            assert answer.status_code == 409, answer.text
        else:
            assert answer.status_code == 201, answer.text
            made = Known(answer.json()["id"].removeprefix("dev_"), reference, "", "ACTIVE",
                         dict.fromkeys(FLAGS, True))  # fmt: skip
            self.devices.append(made)
            self.touched = made

    @rule(index=st.integers(0, 1000), reference=st.sampled_from(REFERENCES))
    def f_patch(self, index: int, reference: str) -> None:
        device = self.pick(index)
        if device is None:
            return
        answer = self.clients.count(
            "f_patch",
            self.clients.f.patch(f"/devices/{device.f_id}", json={"reference_id": reference}),
        )
        if "\t" in reference:
            assert answer.status_code == 400, answer.text
        elif device.status == "DELETED":
            assert answer.status_code == 404, answer.text
        elif self.reference_taken(reference, device):
            assert answer.status_code == 409, answer.text
        else:
            assert answer.status_code == 200, answer.text
            device.reference_id = reference
        self.touched = device

    @rule(index=st.integers(0, 1000), dialect=st.sampled_from(["F", "D"]))
    def delete(self, index: int, dialect: str) -> None:
        device = self.pick(index)
        if device is None:
            return
        if dialect == "F":
            answer = self.clients.count(
                "f_delete", self.clients.f.delete(f"/devices/{device.f_id}")
            )
            ok, gone = 202, 404
        else:
            answer = self.clients.count("d_delete", self.clients.d.delete(f"/device/{device.d_id}"))
            ok, gone = 200, 400
        assert answer.status_code == (gone if device.status == "DELETED" else ok), answer.text
        device.status = "DELETED"
        self.touched = device

    # --- dialect D

    @rule(identifier=st.sampled_from(IDENTIFIERS))
    def d_create(self, identifier: str) -> None:
        answer = self.clients.count(
            "d_create", self.clients.d.post("/device", json={"device_identifier": identifier})
        )
        if not identifier.strip() or self.identifier_taken(identifier, None):
            assert answer.status_code == 400, answer.text
            return
        assert answer.status_code == 201, answer.text
        hex_id = uuid.UUID(answer.json()["id"]).hex
        made = Known(hex_id, "", identifier, "ACTIVE", dict.fromkeys(FLAGS, True))
        self.devices.append(made)
        self.touched = made

    @rule(
        index=st.integers(0, 1000),
        identifier=st.one_of(st.none(), st.sampled_from(IDENTIFIERS)),
        flags=st.dictionaries(st.sampled_from(FLAGS), st.booleans()),
    )
    def d_put(self, index: int, identifier: str | None, flags: dict[str, bool]) -> None:
        device = self.pick(index)
        if device is None:
            return
        body: dict[str, Any] = {"fields": [], **flags}
        if identifier is not None:
            body["device_identifier"] = identifier
        answer = self.clients.count(
            "d_put", self.clients.d.put(f"/device/{device.d_id}", json=body)
        )
        if device.status == "DELETED":
            assert answer.json()["errors"][0]["code"] == "entity_not_found", answer.text
        elif identifier is not None and (
            not identifier.strip() or self.identifier_taken(identifier, device)
        ):
            assert answer.status_code == 400, answer.text
        else:
            assert answer.status_code == 201, answer.text
            device.device_identifier = identifier or device.device_identifier
            device.flags.update(flags)
        self.touched = device

    @rule(index=st.integers(0, 1000), status=st.sampled_from(["DISABLED", "ACTIVE"]))
    def d_set_status(self, index: int, status: str) -> None:
        device = self.pick(index)
        if device is None:
            return
        action = "disable" if status == "DISABLED" else "enable"
        answer = self.clients.count(
            "d_" + action, self.clients.d.put(f"/device/{device.d_id}/{action}")
        )
        if device.status == "DELETED":
            assert answer.status_code == 400, answer.text
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == status, answer.text
            device.status = status
        self.touched = device

    # --- both dialects agree with the model

    @invariant()
    def dialects_agree(self) -> None:
        if self.touched is not None:
            self.check_device(self.touched)
        alive = self.alive()
        listed = self.clients.f.get("/devices", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        assert [d["id"] for d in listed.json()["data"]] == [d.f_id for d in reversed(alive)]
        queried = self.clients.d.get("/device", params={"limit": 1000})
        assert queried.status_code == 200, queried.text
        assert queried.json()["total"] == len(alive)
        assert [d["id"] for d in queried.json()["records"]] == [d.d_id for d in alive]

    def check_device(self, device: Known) -> None:
        f = self.clients.f.get(f"/devices/{device.f_id}")
        d = self.clients.d.get(f"/device/{device.d_id}")
        if device.status == "DELETED":
            assert f.status_code == 404, f.text
            assert d.status_code == 400 and d.json()["errors"][0]["code"] == "entity_not_found"
            return
        assert f.status_code == 200 and d.status_code == 200, (f.text, d.text)
        assert f.json()["reference_id"] == device.reference_id
        record = d.json()
        assert record["device_identifier"] == device.device_identifier
        assert record["status"] == device.status
        assert {flag: record[flag] for flag in FLAGS} == device.flags


@pytest.fixture
def clients(module_server: RunningServer) -> Iterator[Clients]:
    account = create_account(module_server, "Acme")
    token = login(module_server, account["account_id"], account["live_key"])
    with (
        bearer_client(module_server, token) as f,
        d_client(module_server, account["live_key"]) as d,
    ):
        yield Clients(f, d)


def test_both_dialects_agree_with_a_model(module_server: RunningServer, clients: Clients) -> None:
    """Each example has the account to itself: the machine deletes what it made first."""

    class Run(HttpDeviceMachine):
        def teardown(self) -> None:
            for device in self.alive():
                self.clients.f.delete(f"/devices/{device.f_id}")

    Run.clients = clients
    sqlite = module_server.database_url is None
    run_state_machine_as_test(
        Run,
        settings=hypothesis.settings(
            max_examples=EXAMPLES or (40 if sqlite else 15),
            stateful_step_count=STEPS or 20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    calls = clients.calls
    print(f"HTTP state machine: {sum(calls.values())} calls", dict(sorted(calls.items())))
    # Both dialects made, changed and deleted devices (which rules run is Hypothesis' choice).
    for answers in (("f_create 201",), ("d_create 201",), ("f_patch 200", "d_put 201"),
                    ("f_delete 202", "d_delete 200")):  # fmt: skip
        assert any(calls[answer] for answer in answers), (answers, dict(calls))
