"""Issue 12 item 9: enrollment secrets on a real `devreg serve` (SQLite and PostgreSQL),
used over the real EST port: a new secret replaces the device's outstanding one, the owner
can revoke it, and an account holds at most DEVREG_MAX_ENROLLMENT_SECRETS at once (409
`enrollment_secret_limit`; replacing a device's own secret never counts against it)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.issuance_support import EST, World, csr, est_body, new_key
from tests.support.server import start_server

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MAX_SECRETS = 3


@pytest.fixture(scope="module", params=BACKENDS)
def server_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"secrets-{request.param}")
    server = start_server(
        base / "data", database_url=database_url, est=True, max_enrollment_secrets=MAX_SECRETS
    )
    try:
        yield World(server, base)
    finally:
        server.stop()


@pytest.fixture
def world(server_world: World) -> World:
    """A fresh account on the module's server: the cap is per account."""
    return World(server_world.server, server_world.work)


def secret(world: World, device_id: str) -> httpx.Response:
    return world.api.post(f"/device/{device_id}/enrollment-secret")


def enroll(world: World, device_id: str, value: str) -> int:
    with world.est() as est:
        answer = est.post(EST + "simpleenroll", **est_body(csr(new_key())), auth=(device_id, value))
    return answer.status_code


def revoke(world: World, device_id: str) -> httpx.Response:
    return world.api.put(f"/device/{device_id}/enrollment-secret/revoke")


def test_a_new_secret_replaces_the_outstanding_one(world: World) -> None:
    device_id = world.device()
    first = secret(world, device_id).json()["secret"]
    second = secret(world, device_id).json()["secret"]
    assert enroll(world, device_id, first) == 401
    assert enroll(world, device_id, second) == 200
    assert enroll(world, device_id, second) == 401  # used once


def test_the_owner_revokes_a_secret(world: World) -> None:
    device_id = world.device()
    value = secret(world, device_id).json()["secret"]
    answer = revoke(world, device_id)
    assert (answer.status_code, answer.json()) == (200, {"revoked": 1})
    assert enroll(world, device_id, value) == 401
    assert revoke(world, device_id).json() == {"revoked": 0}  # nothing outstanding
    # A used secret is not outstanding either.
    used = secret(world, device_id).json()["secret"]
    assert enroll(world, device_id, used) == 200
    assert revoke(world, device_id).json() == {"revoked": 0}
    unknown = world.api.put("/device/00000000-0000-7000-8000-000000000000/enrollment-secret/revoke")
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["code"] == "entity_not_found"
    no_key = httpx.put(
        world.server.base_url + f"/iot/api/v2/device/{device_id}/enrollment-secret/revoke"
    )
    assert no_key.status_code == 401


def test_an_account_holds_a_few_outstanding_secrets(world: World) -> None:
    devices = [world.device() for _ in range(MAX_SECRETS + 1)]
    values = [secret(world, d).json()["secret"] for d in devices[:MAX_SECRETS]]
    over = secret(world, devices[-1])
    assert over.status_code == 409, over.text
    (error,) = over.json()["errors"]
    assert error["code"] == "enrollment_secret_limit"
    assert str(MAX_SECRETS) in error["message"]
    # Replacing a device's own secret is no new one: allowed at the cap, and the old
    # secret is revoked (the refused request changed nothing).
    replaced = secret(world, devices[0])
    assert replaced.status_code == 201, replaced.text
    assert enroll(world, devices[0], values[0]) == 401
    # Another account has its own allowance.
    other = World(world.server, world.work)
    assert secret(other, other.device()).status_code == 201
    # A revoked or used secret frees its place.
    assert revoke(world, devices[1]).json() == {"revoked": 1}
    assert enroll(world, devices[2], values[2]) == 200
    assert secret(world, devices[-1]).status_code == 201
    assert secret(world, world.device()).status_code == 201
    assert secret(world, world.device()).status_code == 409
