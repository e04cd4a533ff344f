"""Property-based runs with Schemathesis against the real server: seed 000's own OpenAPI
document (PATCH /devices/{id}) and dialect F's operations in the document the server
publishes, with a real token (and Basic credentials for /login), in live and test mode.

The device id is drawn from real devices (so that updates really happen) as well as
generated. Responses must never be 5xx and must match the documented statuses, schemas and
content types. The whole document, stateful (following its links), is fuzzed by
tests/server/test_openapi_fuzz.py; dialect D's operations by tests/dialect_d."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from devreg.server.openapi import build_openapi
from tests.dialect_f.helpers import ERROR_FIELDS, Tenant, new_tenant
from tests.support.fuzz import (
    STRICT_CHECKS,
    Credentials,
    Exercise,
    backend_of,
    budget,
    operations_of,
    run_operation,
)
from tests.support.server import RunningServer

__all__ = ["operations_of"]  # tests/server/test_service.py reads the document with it

SEED_SPEC = Path("/work/shared/seeds/flatpeak-update-device.openapi.yaml")
# What seed 000 documents for PATCH /devices/{id}.
SEED_STATUSES = {200, 403, 404, 409, 429}
F_PATHS = ("/login", "/devices", "/devices/{id}")


@pytest.fixture
def real_ids(tenant: Tenant, f_server: RunningServer) -> list[str]:
    """Devices of this tenant, plus ones it must not reach (other mode, other account)."""
    ids = [tenant.live.post("/devices", json={}).json()["id"] for _ in range(6)]
    ids.append(tenant.test.post("/devices", json={}).json()["id"])
    other = new_tenant(f_server, "Globex")
    try:
        ids.append(other.live.post("/devices", json={}).json()["id"])
    finally:
        other.close()
    return ids


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as made:  # kept-alive connections: a run is many requests
        yield made


def devreg_refuses(body: object) -> bool:
    """Whether devreg's own published DeviceUpdate schema (stricter than the seed's: at
    most 255 characters, no control characters, no unknown fields) refuses `body`."""
    if isinstance(body, bytes):  # sent as is: refused unless it is JSON
        try:
            body = json.loads(body)
        except ValueError:
            return True
    schemas = build_openapi()["components"]["schemas"]
    return not jsonschema_rs.validator_for(schemas["DeviceUpdate"]).is_valid(body)


def seed_statuses_only(case: Any, response: Any) -> None:
    """A status seed 000 documents; or a 400, for a body devreg's own document refuses,
    with seed 000's error object."""
    if response.status_code in SEED_STATUSES:
        return
    assert response.status_code == 400, (response.status_code, response.text)
    sent = {} if isinstance(case.body, NotSet) else case.body  # no body: an empty object
    assert devreg_refuses(sent), (case.body, response.text)
    body = response.json()
    assert set(body) == ERROR_FIELDS and body["type"] == "invalid_request", body


def patch_keeps_what_was_sent(case: Any, response: Any) -> None:
    if (
        response.status_code == 200
        and isinstance(case.body, dict)
        and isinstance(case.body.get("reference_id"), str)
    ):
        # What was sent is what the device now has.
        assert response.json()["reference_id"] == case.body["reference_id"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_seed_spec_update_device(
    f_server: RunningServer,
    tenant: Tenant,
    real_ids: list[str],
    session: requests.Session,
    mode: GenerationMode,
) -> None:
    schema = schemathesis.openapi.from_path(SEED_SPEC)
    operation = schema["/devices/{id}"]["PATCH"]
    statuses: Counter[int] = Counter()

    def after(case: Any, response: Any) -> None:
        seed_statuses_only(case, response)
        patch_keeps_what_was_sent(case, response)

    how = Exercise(
        f_server.base_url,
        {"Authorization": f"Bearer {tenant.live_token}"},
        ids=real_ids,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        call_options={"session": session},
        after=after,
    )
    run_operation(operation, mode, how, statuses, budget(100, backend_of(f_server.database_url)))
    assert all(status < 500 for status in statuses), statuses
    assert 404 in statuses, statuses  # generated ids, and the unreachable real ones
    if mode == GenerationMode.POSITIVE:
        assert statuses[200] >= 3, statuses  # real updates happened


@pytest.mark.parametrize("live", [True, False], ids=["live", "test"])
def test_published_spec_dialect_f_operations(
    f_server: RunningServer,
    tenant: Tenant,
    real_ids: list[str],
    session: requests.Session,
    live: bool,
) -> None:
    """Every dialect F operation, in both generation modes, with the key's own credentials:
    schema-valid requests get documented answers, schema-invalid ones a 4xx."""
    schema = schemathesis.openapi.from_url(f_server.base_url + "/openapi.json")
    credentials = Credentials(
        tenant.account_id,
        tenant.live_key if live else tenant.test_key,
        tenant.live_token if live else tenant.test_token,
    )
    operations = [op for op in operations_of(schema) if op.path in F_PATHS]
    assert len(operations) == 6, [op.label for op in operations]
    # Deletes last, so that the other operations still find real devices.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    examples = budget(40 if live else 15, backend_of(f_server.database_url))
    seen: dict[str, Counter[int]] = {}
    for operation in operations:
        how = Exercise(
            f_server.base_url,
            credentials.headers_for(operation),
            ids=real_ids,
            checks=STRICT_CHECKS,
            call_options={"session": session},
            after=patch_keeps_what_was_sent if operation.method.upper() == "PATCH" else None,
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = seen.setdefault(f"{operation.label} {mode.value}", Counter())
            run_operation(operation, mode, how, statuses, examples)
    assert all(status < 500 for counts in seen.values() for status in counts), seen
    successes = {label for label, counts in seen.items() if any(s < 300 for s in counts)}
    expected = {"GET /login positive", "POST /devices positive", "GET /devices positive"}
    if live and examples >= 40:  # the test key reaches one real device only
        expected |= {
            "GET /devices/{id} positive",
            "PATCH /devices/{id} positive",
            "DELETE /devices/{id} positive",
        }
    assert expected <= successes, seen
