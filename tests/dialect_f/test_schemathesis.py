"""Property-based runs with Schemathesis against the real server: seed 000's own OpenAPI
document (PATCH /devices/{id}) and the full document the server publishes.

The device id is drawn from real devices (so that updates really happen) as well as
generated; the bearer token is a real one. Responses must never be 5xx and must match the
documented schemas and content types."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.dialect_f.helpers import Tenant, basic_header, new_tenant
from tests.support.server import RunningServer

SEED_SPEC = Path("/work/shared/seeds/flatpeak-update-device.openapi.yaml")
SETTINGS = hypothesis.settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


def operations_of(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the document; fails naming the ones Schemathesis cannot read."""
    results = list(schema.get_all_operations())
    broken = [str(result.err()) for result in results if isinstance(result, Err)]
    assert not broken, broken
    return [result.ok() for result in results if not isinstance(result, Err)]


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


def run_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    ids: list[str],
    checks: list[Any],
    statuses: Counter[int],
    max_examples: int = 100,
) -> None:
    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode),
        # Real ids first: Hypothesis favours the first branch, and updates need real devices.
        real_id=st.one_of(st.sampled_from(ids), st.none()) if ids else st.none(),
    )
    @hypothesis.settings(SETTINGS, max_examples=max_examples)
    def exercise(case: Any, real_id: str | None) -> None:
        if real_id is not None and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = real_id
        response = case.call(base_url=base_url, headers=headers)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks)
        if (
            operation.method.upper() == "PATCH"
            and response.status_code == 200
            and isinstance(case.body, dict)
            and isinstance(case.body.get("reference_id"), str)
        ):
            # What was sent is what the device now has.
            assert response.json()["reference_id"] == case.body["reference_id"]

    exercise()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_seed_spec_update_device(
    f_server: RunningServer, tenant: Tenant, real_ids: list[str], mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_path(SEED_SPEC)
    operation = schema["/devices/{id}"]["PATCH"]
    statuses: Counter[int] = Counter()
    run_operation(
        operation,
        mode,
        f_server.base_url,
        {"Authorization": f"Bearer {tenant.live_token}"},
        real_ids,
        [not_a_server_error, response_schema_conformance, content_type_conformance],
        statuses,
    )
    assert all(status < 500 for status in statuses), statuses
    assert 404 in statuses, statuses  # generated ids, and the unreachable real ones
    if mode == GenerationMode.POSITIVE:
        assert statuses[200] >= 5, statuses  # real updates happened


def test_published_spec_all_operations(
    f_server: RunningServer, tenant: Tenant, real_ids: list[str]
) -> None:
    schema = schemathesis.openapi.from_url(f_server.base_url + "/openapi.json")
    checks = [
        not_a_server_error,
        response_schema_conformance,
        content_type_conformance,
        status_code_conformance,
    ]
    seen: dict[str, Counter[int]] = {}
    operations = operations_of(schema)
    # Deletes last, so that the other operations still find real devices.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    for operation in operations:
        if operation.path in {"/healthz", "/ca.pem", "/crl.pem", "/crl.der"}:
            # nothing to generate: tests/server and tests/dialect_d/test_lifecycle cover them
            continue
        if operation.path == "/login":
            headers = {"Authorization": basic_header(tenant.account_id, tenant.live_key)}
        else:
            headers = {"Authorization": f"Bearer {tenant.live_token}"}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = seen.setdefault(f"{operation.label} {mode.value}", Counter())
            run_operation(
                operation,
                mode,
                f_server.base_url,
                headers,
                real_ids,
                checks,
                statuses,
                max_examples=40,
            )
    assert all(status < 500 for counts in seen.values() for status in counts), seen
    successes = {label for label, counts in seen.items() if any(s < 300 for s in counts)}
    for label in (
        "GET /login positive",
        "POST /devices positive",
        "GET /devices positive",
        "GET /devices/{id} positive",
        "PATCH /devices/{id} positive",
        "DELETE /devices/{id} positive",
    ):
        assert label in successes, seen
