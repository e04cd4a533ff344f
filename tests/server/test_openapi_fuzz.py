"""The whole document devreg publishes (`/openapi.json`), fuzzed by Schemathesis against the
real server, authenticated as each operation declares:

- its links are valid and lead from each made object to what can be done with it;
- Schemathesis' deterministic coverage cases (boundaries, missing and malformed parts) run
  on every operation;
- stateful runs follow the links (POST /devices -> GET/PATCH/DELETE /devices/{id}; a D
  division -> a profile -> a device -> its certificate -> revocation, ...), per dialect;
- the service's own operations answer as documented.

Per operation, with real ids and both generation modes: tests/dialect_f and tests/dialect_d
(test_schemathesis.py). Longer runs: DEVREG_FUZZ_EXAMPLES (README)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import ensure_resource_availability
from schemathesis.specs.openapi.stateful import collect_transitions

from devreg.auth.api_keys import new_api_key
from devreg.core.accounts import build_account
from devreg.core.clock import now_us
from devreg.storage import open_store
from tests.support.fuzz import (
    FUZZ_EXAMPLES,
    RESPONSE_CHECKS,
    STRICT_CHECKS,
    Credentials,
    Exercise,
    apply,
    backend_of,
    budget,
    operations_of,
    run_operation,
)
from tests.support.origins import TEST_ORIGIN
from tests.support.server import RunningServer

# Not schemathesis's use_after_free: D's restore brings a deleted device back, which it
# cannot know; check_model below asserts the same (a deleted device is not found) and
# follows restores.
STATEFUL_CHECKS = [*RESPONSE_CHECKS, ensure_resource_availability]
SERVICE_PATHS = {"/healthz", "/ca.pem", "/crl.pem", "/crl.der"}
# Each made object leads to every operation on it (the link names of /openapi.json).
EXPECTED_LINKS = {
    "POST /devices": {"GetDevice", "UpdateDevice", "DeleteDevice", "ListOlderDevices"},
    "PATCH /devices/{id}": {"GetDevice", "UpdateDevice", "DeleteDevice"},
    "POST /iot/api/v2/division": {"GetDivision", "CreateProfile", "ListDevices"},
    "POST /iot/api/v2/device-profile": {"GetProfile", "UpdateProfile", "CreateDevice"},
    "POST /iot/api/v2/device": {
        "GetDevice", "UpdateDevice", "DisableDevice", "EnableDevice", "DeleteDevice",
        "IssueCertificate", "ListCertificates", "CreateEnrollmentSecret",
        "RevokeEnrollmentSecret", "RevokeAllCertificates",
    },
    "POST /iot/api/v2/device/{id}/certificate": {"RevokeCertificate", "ListCertificates"},
    "POST /iot/api/v2/api-key": {"GetApiKey", "RevokeApiKey", "RotateApiKey"},
}  # fmt: skip


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as made:  # kept-alive connections: a run is many requests
        yield made


class Accounts:
    """Accounts made straight in the server's store (milliseconds; the CLI takes a process
    each), logged in over HTTP: a fresh one per stateful scenario, so that each scenario
    starts from the same (empty) state and Hypothesis sees the same responses when it
    replays one."""

    def __init__(self, server: RunningServer, session: requests.Session) -> None:
        self.server = server
        self.session = session
        self.loop = asyncio.new_event_loop()
        self.store = self.loop.run_until_complete(open_store(server.database_url, server.data_dir))

    def new(self) -> Credentials:
        made = build_account("Fuzz", now_us())
        secret, key = new_api_key(made.account.id, True, now_us())
        self.loop.run_until_complete(
            self.store.create_account(made.account, [key], made.division, made.profile, TEST_ORIGIN)
        )
        account_id = "acc_" + made.account.id.hex()
        answer = self.session.get(self.server.base_url + "/login", auth=(account_id, secret))
        assert answer.status_code == 200, answer.text
        return Credentials(account_id, secret, answer.json()["bearer_token"])

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


@pytest.fixture
def accounts(module_server: RunningServer, session: requests.Session) -> Iterator[Accounts]:
    made = Accounts(module_server, session)
    try:
        yield made
    finally:
        made.close()


def test_links_resolve_and_cover_the_made_objects(module_server: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(module_server.base_url + "/openapi.json")
    operations = operations_of(schema)
    transitions = collect_transitions(operations)  # raises on a link that does not resolve
    outgoing = {
        label: {link.name for link in found.outgoing}
        for label, found in transitions.operations.items()
    }
    for source, names in EXPECTED_LINKS.items():
        assert names <= outgoing.get(source, set()), (source, outgoing.get(source))
    # Every operation on an existing object can be reached by a link, except the device's
    # own renewal (its client certificate is the way in).
    targets = {link.target.label for found in transitions.operations.values()
               for link in found.outgoing}  # fmt: skip
    on_objects = {op.label for op in operations if "{id}" in op.path}
    assert on_objects - targets == {"POST /iot/api/v2/device/{id}/renew"}, on_objects - targets


def test_service_operations(module_server: RunningServer, session: requests.Session) -> None:
    """/healthz, /ca.pem, /crl.pem, /crl.der: documented answers, no credentials needed."""
    schema = schemathesis.openapi.from_url(module_server.base_url + "/openapi.json")
    operations = [op for op in operations_of(schema) if op.path in SERVICE_PATHS]
    assert {op.path for op in operations} == SERVICE_PATHS
    for operation in operations:
        statuses: Counter[int] = Counter()
        how = Exercise(module_server.base_url, {}, call_options={"session": session})
        run_operation(operation, GenerationMode.POSITIVE, how, statuses, 3)
        assert set(statuses) == {200}, (operation.label, statuses)


def test_coverage_cases_of_every_operation(
    module_server: RunningServer, session: requests.Session, accounts: Accounts
) -> None:
    """Schemathesis' coverage cases (deterministic: boundary values, each parameter missing
    or malformed, wrong types, in both modes) for every operation, with the credentials it
    declares; the answers must be as documented, and refusals of the invalid ones."""
    schema = schemathesis.openapi.from_url(module_server.base_url + "/openapi.json")
    credentials = accounts.new()
    cases: Counter[str] = Counter()
    for operation in operations_of(schema):
        generator = CoverageGenerator(
            operation=operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
            auth_storage=None,
            override=Override(),
            feedback=FeedbackSources(),
        )
        for case in generator:
            apply(case, credentials.headers_for(operation), None, None)
            response = case.call(base_url=module_server.base_url, session=session)
            cases[operation.label] += 1
            case.validate_response(response, checks=STRICT_CHECKS)
    print(f"coverage: {sum(cases.values())} cases,", dict(cases))
    assert len(cases) == len(operations_of(schema)), cases


def stateful_machine(
    schema: Any,
    base_url: str,
    accounts: Accounts,
    session: requests.Session,
    statuses: dict[str, Counter[int]],
) -> Any:
    """Schemathesis' state machine for the document, plus: credentials as each operation
    declares, the checks, and a model of which devices exist, so that a device made and
    not deleted is found, and one deleted is not (in either dialect's words)."""
    # Only the document's own links: Schemathesis would add links it infers from names
    # (a device's division to POST /device, ...), which spread the steps thin.
    schema.config.phases.stateful.inference.algorithms = []
    machine: Any = schema.as_state_machine()

    class DevregWorkflow(machine):  # type: ignore[misc]
        def setup(self) -> None:
            self.credentials = accounts.new()
            self.alive: set[str] = set()
            self.deleted: set[str] = set()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "base_url": base_url,
                "headers": self.credentials.headers_for(case.operation),
                "session": session,
            }

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
            case.validate_response(
                response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs, recorder=self.recorder
            )
            self.check_model(case, response)

        def check_model(self, case: Any, response: Any) -> None:
            path = case.operation.path
            status = response.status_code
            device_path = path.startswith(("/devices/{id}", "/iot/api/v2/device/{id}"))
            device_id = (case.path_parameters or {}).get("id") if device_path else None
            if not isinstance(device_id, str):  # negative cases may send other types
                device_id = None
            if status == 404:
                gone = True
            elif status == 400 and path.startswith("/iot/"):
                gone = response.json()["errors"][0]["code"] == "entity_not_found"
            else:
                gone = False
            # A device's past: its history, and GET as_of a moment (before it was made: not
            # found); a deleted device's past stays readable.
            as_of = "as_of" in (case.query or {}) and case.method.upper() == "GET"
            past = path == "/iot/api/v2/device/{id}/history" or as_of
            if device_id in self.alive and path != "/iot/api/v2/device/{id}/renew" and not as_of:
                assert not gone, f"{case.operation.label}: a device made before is not found"
            restoring = path == "/iot/api/v2/device/{id}/restore"
            if device_id in self.deleted and not restoring and not past:
                assert status >= 400, f"{case.operation.label} found a deleted device"
            if device_id in self.deleted and past and status == 200 and not as_of:
                records = response.json()["records"]  # its delete is among them
                assert (
                    any(r["action"] == "device.delete" for r in records)
                    or response.json()["offset"]
                ), f"{case.operation.label}: a deleted device's history without its delete"
            if restoring and device_id is not None and status < 300:
                # only a deleted device is restored (else 400), and it is back
                assert device_id in self.deleted, f"restored a device never deleted: {device_id}"
                self.deleted.discard(device_id)
                self.alive.add(device_id)
            made = case.method.upper() == "POST" and path in ("/devices", "/iot/api/v2/device")
            if made and status == 201:
                self.alive.add(response.json()["id"])
            if case.method.upper() == "DELETE" and device_id is not None and status < 300:
                self.alive.discard(device_id)
                self.deleted.add(device_id)

    return DevregWorkflow


# Per dialect: which operations, the scenarios (SQLite; a third on PostgreSQL), and the
# operations the links must have reached with a success.
STATEFUL = {
    "F": ("^/(login|devices)", 30, {
        "POST /devices", "GET /devices", "GET /devices/{id}", "PATCH /devices/{id}",
        "DELETE /devices/{id}",
    }),
    "D": ("^/iot/api/v2/", 150, {  # its links fan out to a dozen device operations
        "POST /iot/api/v2/division", "GET /iot/api/v2/division/{id}",
        "POST /iot/api/v2/device-profile", "GET /iot/api/v2/device-profile/{id}",
        "POST /iot/api/v2/device", "GET /iot/api/v2/device/{id}",
    }),
}  # fmt: skip


@pytest.mark.parametrize("dialect", ["F", "D"])
def test_stateful_along_the_links(
    module_server: RunningServer, session: requests.Session, accounts: Accounts, dialect: str
) -> None:
    """Scenarios of up to 20 steps (30 in a long run) following the document's links, from
    a fresh account each; the dialects have no links between them, so each gets its own
    run (and its own budget)."""
    paths, sqlite_scenarios, reached = STATEFUL[dialect]
    document = schemathesis.openapi.from_url(module_server.base_url + "/openapi.json")
    schema = document.include(path_regex=paths)
    statuses: dict[str, Counter[int]] = {}
    machine = stateful_machine(schema, module_server.base_url, accounts, session, statuses)
    machine.run(
        settings=hypothesis.settings(
            max_examples=budget(sqlite_scenarios, backend_of(module_server.database_url)),
            stateful_step_count=30 if FUZZ_EXAMPLES else 20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
    )
    called = {label for label, counts in statuses.items() if sum(counts.values())}
    print(
        f"stateful {dialect}: {sum(sum(c.values()) for c in statuses.values())} calls,"
        f" {len(called)} operations:",
        {label: dict(counts) for label, counts in sorted(statuses.items())},
    )
    succeeded = {label for label, counts in statuses.items() if any(s < 300 for s in counts)}
    if module_server.database_url is not None and not FUZZ_EXAMPLES:
        reached = {label for label in reached if label.startswith("POST")}  # a third the run
    assert reached <= succeeded, (sorted(reached - succeeded), statuses)
