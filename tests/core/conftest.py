"""Accounts in the real store (both backends) and a DeviceService with a controllable clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devreg.auth.api_keys import new_api_key
from devreg.core.accounts import build_account
from devreg.core.devices import DeviceService
from devreg.core.records import Caller, DeviceProfile
from devreg.core.store import DeviceStore
from tests.support.origins import TEST_ORIGIN, api_caller

START = 1_700_000_000_000_000


@dataclass
class Tenant:
    account_id: bytes
    live: Caller
    test: Caller
    profile: DeviceProfile


class StepClock:
    """Returns START, START+step, ... ; `step=0` repeats a time, to make ties."""

    def __init__(self, start: int = START, step: int = 1000) -> None:
        self.value = start
        self.step = step

    def __call__(self) -> int:
        value = self.value
        self.value += self.step
        return value


async def make_tenant(store: DeviceStore, name: str = "Acme") -> Tenant:
    new = build_account(name, START)
    _, live_key = new_api_key(new.account.id, True, START)
    _, test_key = new_api_key(new.account.id, False, START)
    await store.create_account(
        new.account, [live_key, test_key], new.division, new.profile, TEST_ORIGIN
    )
    return Tenant(
        account_id=new.account.id,
        live=api_caller(new.account.id, True, live_key.id),
        test=api_caller(new.account.id, False, test_key.id),
        profile=new.profile,
    )


@pytest.fixture
async def tenant(store: DeviceStore) -> Tenant:
    return await make_tenant(store, "Acme")


@pytest.fixture
async def other_tenant(store: DeviceStore) -> Tenant:
    return await make_tenant(store, "Globex")


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def service(store: DeviceStore, clock: StepClock) -> DeviceService:
    return DeviceService(store, clock)
