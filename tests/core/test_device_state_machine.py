"""A Hypothesis state machine for the device core, on the real stores (SQLite file and
PostgreSQL): random sequences of both dialects' entry points — create (F: a reference; D:
an identifier, a profile, field values), PATCH (F), PUT (D: destructive values, flags),
disable, enable, delete — by four callers (two accounts, live and test), with small pools
of references, identifiers and values so that collisions, invalid input and other
callers' devices come up often. A plain Python model predicts every answer (the record or
the error), and after every step the store must agree with it: each caller's F listing
walked in pages both ways (starting_after, then ending_before back), D's query (oldest
first, with an offset), lookups by reference and identifier, the touched device's record
and values, and that deleted devices are gone for everyone.

Bounded for the suite; DEVREG_PROPERTY_EXAMPLES / DEVREG_PROPERTY_STEPS make a longer run
(README, "Fuzzing and properties")."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import hypothesis
import msgspec
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from devreg.auth.api_keys import new_api_key
from devreg.core.access import DeviceFlags
from devreg.core.accounts import build_account
from devreg.core.devices import (
    MAX_FIELD_VALUE,
    MAX_IDENTIFIER,
    MAX_REFERENCE_ID,
    DeviceService,
)
from devreg.core.errors import Conflict, DomainError, InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.profiles import FieldSpec, ProfileFlags
from devreg.core.records import Caller, Device, DeviceStatus
from devreg.core.store import DeviceFilter, DeviceStore
from devreg.core.text import first_forbidden
from devreg.storage import migrate_store, open_store
from tests.core.conftest import START
from tests.support.origins import TEST_ORIGIN, api_caller

T = TypeVar("T")

EXAMPLES = int(os.environ.get("DEVREG_PROPERTY_EXAMPLES", "0") or 0)
STEPS = int(os.environ.get("DEVREG_PROPERTY_STEPS", "0") or 0)
PAGE = 3  # small pages: a few devices make several

# Small pools, so that values collide; a few invalid ones (too long, control and format
# characters, whitespace only); NFC and NFD spellings of one value collide too.
CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"
REFERENCES = [
    "", "r1", "r1", "r2", "R1", " r1", "x" * MAX_REFERENCE_ID, "x" * 256, "a\nb",
    CAFE_NFC, CAFE_NFD, "a\u202eb", "\u2028", " ",
]  # fmt: skip
IDENTIFIERS = [
    "d1", "d1", "d2", "d2", "D1", "d1 ", " ", "\x7f", "y" * MAX_IDENTIFIER, "y" * 256,
    CAFE_NFC, CAFE_NFD, "d\u200b1", "\ufeff",
]  # fmt: skip
VALUES = ["v1", "v2", "", "ünï", "z" * MAX_FIELD_VALUE, "z" * (MAX_FIELD_VALUE + 1), "a\x00b"]
FIELDS = ["serial", "colour", "note", "unknown"]  # serial mandatory (Sensor); note: Meter
PROFILES = ["Default", "Sensor", "Meter"]
FLAGS = ("allow_read", "allow_write", "allow_renew")

# Mostly the first account's live devices, so that its devices collide; sometimes the
# device's owner is not the caller (another account or mode: not found).
ACCOUNT = st.sampled_from([0, 0, 0, 1])
LIVE = st.sampled_from([True, True, True, False])
OWN = st.sampled_from([True, True, True, False])
INDEX = st.integers(-2, 10**6)  # see DeviceMachine.pick
STEP = st.sampled_from([0, 1, 1000])  # 0: the same time again, a tie in creation order
REFERENCE = st.sampled_from([None, *REFERENCES])  # None: not sent
GIVEN = st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(VALUES)), max_size=3)
VALID = st.sampled_from([True, True, False])  # make the values valid for the profile


class Clock:
    """The service's clock: the machine sets it; repeated times make creation-order ties."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@dataclass
class ModelProfile:
    id: bytes
    division_id: bytes
    flags: tuple[bool, bool, bool]
    fields: dict[str, tuple[bytes, bool]]  # name -> (id, mandatory)


@dataclass
class ModelAccount:
    id: bytes
    callers: dict[bool, Caller]  # live_mode -> caller
    divisions: list[bytes]  # default, East
    profiles: dict[str, ModelProfile]


@dataclass
class ModelDevice:
    id: bytes
    account: int
    live_mode: bool
    reference_id: str | None
    device_identifier: str | None
    division_id: bytes
    profile: str
    status: DeviceStatus
    flags: tuple[bool, bool, bool]
    created_at: int
    updated_at: int
    version: int = 1
    values: dict[bytes, str] = field(default_factory=dict)

    def record(self, account_id: bytes, profile_id: bytes) -> Device:
        return Device(
            id=self.id, account_id=account_id, live_mode=self.live_mode,
            reference_id=self.reference_id, device_identifier=self.device_identifier,
            division_id=self.division_id, profile_id=profile_id, status=self.status,
            allow_read=self.flags[0], allow_write=self.flags[1], allow_renew=self.flags[2],
            last_seen=None, created_at=self.created_at, updated_at=self.updated_at,
            version=self.version,
        )  # fmt: skip


def nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def reference_error(value: str) -> bool:
    return len(value) > MAX_REFERENCE_ID or first_forbidden(value) is not None or value.isspace()


def identifier_error(value: str) -> bool:
    return not value.strip() or len(value) > MAX_IDENTIFIER or first_forbidden(value) is not None


@dataclass
class World:
    """The event loop and store one test's examples share (each example makes its own
    accounts, so examples never see each other's devices)."""

    loop: asyncio.AbstractEventLoop
    store: DeviceStore
    outcomes: Counter[str] = field(default_factory=Counter)  # "rule outcome" -> calls

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coroutine)


class DeviceMachine(RuleBasedStateMachine):
    world: ClassVar[World]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.service = DeviceService(self.world.store, self.clock)
        self.accounts: list[ModelAccount] = []
        self.devices: dict[bytes, ModelDevice] = {}
        self.touched: bytes | None = None
        self.steps = 0

    # --- set-up: two accounts, each with the default profile, Sensor and Meter

    @initialize()
    def make_accounts(self) -> None:
        for name in ("Acme", "Globex"):
            self.accounts.append(self.world.run(self.make_account(name)))
        # A few devices from the start (Hypothesis' swarm testing may leave the creating
        # rules out of an example): F ones and D ones, live and test.
        self.create_f(account=0, live=True, reference="r1", step=1)
        self.create_f(account=0, live=False, reference=None, step=1)
        self.create_d(account=0, live=True, profile="Sensor", division="own", identifier="d1",
                      given=[], valid=True, step=1)  # fmt: skip
        self.create_d(account=1, live=True, profile="Default", division="none", identifier="d2",
                      given=[], valid=True, step=0)  # fmt: skip

    async def make_account(self, name: str) -> ModelAccount:
        made = build_account(name, START)
        _, live_key = new_api_key(made.account.id, True, START)
        _, test_key = new_api_key(made.account.id, False, START)
        store = self.world.store
        await store.create_account(
            made.account, [live_key, test_key], made.division, made.profile, TEST_ORIGIN
        )
        live = api_caller(made.account.id, True, live_key.id)
        profiles = self.service.profiles
        east = await profiles.create_division(live, "East")
        sensor = await profiles.create_profile(
            live, "Sensor", None,
            [FieldSpec("serial", mandatory=True), FieldSpec("colour", mandatory=False)],
            ProfileFlags(allow_read=True, allow_write=False, allow_renew=True),
        )  # fmt: skip
        meter = await profiles.create_profile(
            live, "Meter", east.id, [FieldSpec("note", mandatory=False)], ProfileFlags()
        )
        default = made.profile
        return ModelAccount(
            id=made.account.id,
            callers={True: live, False: api_caller(made.account.id, False, test_key.id)},
            divisions=[made.division.id, east.id],
            profiles={
                "Default": ModelProfile(default.id, default.division_id, (True, True, True), {}),
                **{
                    p.profile.name: ModelProfile(
                        p.profile.id, p.division.id,
                        (p.profile.allow_read, p.profile.allow_write, p.profile.allow_renew),
                        {f.name: (f.id, f.mandatory) for f in p.fields},
                    )
                    for p in (sensor, meter)
                },
            },
        )  # fmt: skip

    # --- helpers

    def caller(self, account: int, live: bool) -> Caller:
        return self.accounts[account].callers[live]

    def tick(self, step: int) -> None:
        self.clock.now += step
        self.steps += 1

    def pick(self, index: int) -> bytes:
        """index >= 0: a device not deleted (any account and mode); -1: a deleted one; -2
        (or none to pick): an id never stored."""
        if index == -1:
            known = sorted(i for i, d in self.devices.items() if d.status is DeviceStatus.DELETED)
        else:
            known = sorted(
                i for i, d in self.devices.items() if d.status is not DeviceStatus.DELETED
            )
        return known[index % len(known)] if known and index != -2 else new_id()

    def owner_or(self, device_id: bytes, account: int, live: bool, own: bool) -> Caller:
        device = self.devices.get(device_id)
        if own and device is not None:
            return self.caller(device.account, device.live_mode)
        return self.caller(account, live)

    def visible(self, caller: Caller, device_id: bytes) -> ModelDevice | None:
        device = self.devices.get(device_id)
        if (
            device is None
            or device.status is DeviceStatus.DELETED
            or self.accounts[device.account].id != caller.account_id
            or device.live_mode != caller.live_mode
        ):
            return None
        return device

    def live_devices(self, caller: Caller) -> list[ModelDevice]:
        return [d for d in self.devices.values() if self.visible(caller, d.id) is not None]

    def account_index(self, caller: Caller) -> int:
        return next(n for n, a in enumerate(self.accounts) if a.id == caller.account_id)

    def reference_taken(self, caller: Caller, reference: str, by: bytes | None) -> bool:
        return any(d.reference_id == reference and d.id != by for d in self.live_devices(caller))

    def identifier_taken(
        self, caller: Caller, division_id: bytes, identifier: str, by: bytes | None
    ) -> bool:
        return any(
            d.device_identifier == identifier and d.division_id == division_id and d.id != by
            for d in self.live_devices(caller)
        )

    def field_values(
        self, profile: ModelProfile, given: list[tuple[str, str]]
    ) -> tuple[list[tuple[bytes, str]], bool]:
        """The (field id, value) pairs to send, and whether the core must refuse them."""
        sent: list[tuple[bytes, str]] = []
        invalid = False
        seen: set[bytes] = set()
        for name, value in given:
            if name in profile.fields:
                field_id = profile.fields[name][0]
            else:  # a field of another profile, or none at all: not this profile's
                other = self.accounts[0].profiles["Meter" if name == "note" else "Sensor"]
                field_id = other.fields.get(name, (b"\x00" * 16, False))[0]
                invalid = True
            if field_id in seen or len(value) > MAX_FIELD_VALUE or "\x00" in value:
                invalid = True
            seen.add(field_id)
            sent.append((field_id, value))
        values = dict(sent)
        for field_id, mandatory in profile.fields.values():
            if mandatory and not values.get(field_id):
                invalid = True
        return sent, invalid

    @staticmethod
    def valid_values(profile: ModelProfile, given: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """`given` made acceptable for `profile`: its own fields once, valid values, every
        mandatory one non-empty."""
        made: dict[str, str] = {}
        for name, value in given:
            if name in profile.fields and len(value) <= MAX_FIELD_VALUE and "\x00" not in value:
                made.setdefault(name, value)
        for name, (_, mandatory) in profile.fields.items():
            if mandatory and not made.get(name):
                made[name] = "v1"
        return list(made.items())

    def expect(self, what: str, outcome: type[DomainError] | None, call: Awaitable[T]) -> T | None:
        """Run `call`; it must fail with `outcome` (None: succeed). Counts the outcomes."""
        self.world.outcomes[f"{what} {outcome.__name__ if outcome else 'ok'}"] += 1
        try:
            result = self.world.run(call)
        except DomainError as exc:
            assert outcome is not None and isinstance(exc, outcome), (outcome, exc.message)
            return None
        assert outcome is None, f"expected {outcome.__name__}, got {result!r}"
        return result

    # --- dialect F

    @rule(account=ACCOUNT, live=LIVE, reference=REFERENCE, step=STEP)
    def create_f(self, account: int, live: bool, reference: str | None, step: int) -> None:
        self.tick(step)
        caller = self.caller(account, live)
        stored = None if reference in (None, "") else nfc(reference)
        error: type[DomainError] | None = None
        if reference is not None and reference_error(reference):
            error = InvalidInput
        elif stored is not None and self.reference_taken(caller, stored, None):
            error = Conflict
        device = self.expect("create_f", error, self.service.create(caller, reference))
        if device is not None:
            default = self.accounts[account].profiles["Default"]
            self.devices[device.id] = ModelDevice(
                id=device.id, account=account, live_mode=live, reference_id=stored,
                device_identifier=None, division_id=default.division_id, profile="Default",
                status=DeviceStatus.ACTIVE, flags=default.flags,
                created_at=self.clock.now, updated_at=self.clock.now,
            )  # fmt: skip
            self.touched = device.id

    @rule(index=INDEX, own=OWN, account=ACCOUNT, live=LIVE, reference=REFERENCE, step=STEP)
    def patch_f(
        self, index: int, own: bool, account: int, live: bool, reference: str | None, step: int
    ) -> None:
        """PATCH /devices/{id}: `None` is a body without reference_id (nothing changes)."""
        self.tick(step)
        device_id = self.pick(index)
        caller = self.owner_or(device_id, account, live, own)
        device = self.visible(caller, device_id)
        stored = None if reference in (None, "") else nfc(reference)
        sent: str | msgspec.UnsetType = msgspec.UNSET if reference is None else reference
        error: type[DomainError] | None = None
        if reference is not None and reference_error(reference):
            error = InvalidInput
        elif device is None:
            error = NotFound
        elif stored is not None and self.reference_taken(caller, stored, device_id):
            error = Conflict
        result = self.expect("patch_f", error, self.service.update(caller, device_id, sent))
        if result is not None and device is not None and reference is not None:
            device.reference_id = stored
            device.version += 1
            device.updated_at = self.clock.now
        self.touched = device_id

    # --- dialect D

    @rule(
        account=ACCOUNT, live=LIVE, profile=st.sampled_from(PROFILES),
        division=st.sampled_from(["none", "none", "own", "own", "other", "foreign"]),
        identifier=st.sampled_from(IDENTIFIERS), given=GIVEN, valid=VALID, step=STEP,
    )  # fmt: skip
    def create_d(
        self, account: int, live: bool, profile: str, division: str, identifier: str,
        given: list[tuple[str, str]], valid: bool, step: int,
    ) -> None:  # fmt: skip
        self.tick(step)
        caller = self.caller(account, live)
        model = self.accounts[account].profiles[profile]
        if valid:
            given = self.valid_values(model, given)
        divisions = self.accounts[account].divisions
        division_id = {
            "none": None,
            "own": model.division_id,
            "other": next(d for d in divisions if d != model.division_id),
            "foreign": self.accounts[1 - account].divisions[0],
        }[division]
        sent, invalid_values = self.field_values(model, given)
        error: type[DomainError] | None = None
        if division == "foreign":
            error = NotFound
        elif division == "other" or identifier_error(identifier) or invalid_values:
            error = InvalidInput
        elif self.identifier_taken(caller, model.division_id, nfc(identifier), None):
            error = Conflict
        device = self.expect(
            "create_d",
            error,
            self.service.create_in_profile(caller, identifier, division_id, model.id, sent),
        )
        if device is not None:
            self.devices[device.id] = ModelDevice(
                id=device.id, account=account, live_mode=live, reference_id=None,
                device_identifier=nfc(identifier), division_id=model.division_id, profile=profile,
                status=DeviceStatus.ACTIVE, flags=model.flags, created_at=self.clock.now,
                updated_at=self.clock.now, values={k: v for k, v in sent},
            )  # fmt: skip
            self.touched = device.id

    @rule(
        index=INDEX, own=OWN, account=ACCOUNT, live=LIVE,
        identifier=st.sampled_from([None, *IDENTIFIERS]), given=GIVEN, valid=VALID,
        flags=st.dictionaries(st.sampled_from(FLAGS), st.booleans()), step=STEP,
    )  # fmt: skip
    def put_d(
        self, index: int, own: bool, account: int, live: bool, identifier: str | None,
        given: list[tuple[str, str]], valid: bool, flags: dict[str, bool], step: int,
    ) -> None:  # fmt: skip
        self.tick(step)
        device_id = self.pick(index)
        caller = self.owner_or(device_id, account, live, own)
        device = self.visible(caller, device_id)
        if device is None:
            self.expect(
                "put_d",
                NotFound,
                self.service.replace(caller, device_id, identifier, [], DeviceFlags(**flags)),
            )
            self.touched = device_id
            return
        profile = self.accounts[device.account].profiles[device.profile]
        if valid:
            given = self.valid_values(profile, given)
        sent, invalid_values = self.field_values(profile, given)
        error: type[DomainError] | None = None
        if invalid_values or (identifier is not None and identifier_error(identifier)):
            error = InvalidInput
        elif identifier is not None and self.identifier_taken(
            caller, device.division_id, nfc(identifier), device_id
        ):
            error = Conflict
        view = self.expect(
            "put_d",
            error,
            self.service.replace(caller, device_id, identifier, sent, DeviceFlags(**flags)),
        )
        if view is not None:
            if identifier is not None:
                device.device_identifier = nfc(identifier)
            read, write, renew = device.flags
            device.flags = (
                flags.get("allow_read", read),
                flags.get("allow_write", write),
                flags.get("allow_renew", renew),
            )
            device.values = dict(sent)
            device.version += 1
            device.updated_at = self.clock.now
            assert view.values == device.values
            assert view.device == device.record(self.accounts[device.account].id, profile.id), (
                view.device
            )
        self.touched = device_id

    # --- both: disable, enable, delete

    @rule(
        index=INDEX, own=OWN, account=ACCOUNT, live=LIVE, step=STEP,
        status=st.sampled_from([DeviceStatus.DISABLED, DeviceStatus.ACTIVE]),
    )  # fmt: skip
    def set_status(
        self, index: int, own: bool, account: int, live: bool, status: DeviceStatus, step: int
    ) -> None:
        self.tick(step)
        device_id = self.pick(index)
        caller = self.owner_or(device_id, account, live, own)
        device = self.visible(caller, device_id)
        result = self.expect(
            "set_status",
            None if device else NotFound,
            self.service.set_status(caller, device_id, status),
        )
        if result is not None and device is not None:
            device.status = status
            device.version += 1
            device.updated_at = self.clock.now
        self.touched = device_id

    @rule(index=INDEX, own=OWN, account=ACCOUNT, live=LIVE, step=STEP)
    def delete(self, index: int, own: bool, account: int, live: bool, step: int) -> None:
        self.tick(step)
        device_id = self.pick(index)
        caller = self.owner_or(device_id, account, live, own)
        device = self.visible(caller, device_id)
        self.expect("delete", None if device else NotFound, self.service.delete(caller, device_id))
        if device is not None:
            device.status = DeviceStatus.DELETED
            device.version += 1
            device.updated_at = self.clock.now
        self.touched = device_id

    # --- the store agrees with the model

    @invariant()
    def store_agrees(self) -> None:
        if not self.accounts:
            return
        self.world.run(self.check())

    async def check(self) -> None:
        for account in self.accounts:
            for caller in account.callers.values():
                await self.check_caller(caller)
        if self.touched is not None:
            await self.check_device(self.touched)

    def expected(self, caller: Caller) -> list[Device]:
        """The caller's devices, oldest first, as the store must hold them."""
        account = self.accounts[self.account_index(caller)]
        records = [
            d.record(account.id, account.profiles[d.profile].id) for d in self.live_devices(caller)
        ]
        return sorted(records, key=lambda d: (d.created_at, d.id))

    async def check_caller(self, caller: Caller) -> None:
        expected = self.expected(caller)
        newest_first = expected[::-1]
        # F: newest first, page by page with starting_after ...
        walked: list[Device] = []
        cursor: bytes | None = None
        while True:
            page = await self.service.list_page(caller, limit=PAGE, starting_after=cursor)
            walked += page.devices
            if not page.has_more:
                break
            cursor = page.devices[-1].id
        assert walked == newest_first, "F listing (starting_after) differs from the model"
        # ... and back up from the oldest with ending_before (pages stay newest first).
        if expected:
            back: list[Device] = []
            cursor = expected[0].id
            while True:
                page = await self.service.list_page(caller, limit=PAGE, ending_before=cursor)
                back = page.devices + back
                if not page.has_more:
                    break
                cursor = page.devices[0].id
            assert back == newest_first[:-1], "F listing (ending_before) differs from the model"
        # D: oldest first, the total, and a page at an offset.
        everything, total = await self.service.query(caller, DeviceFilter(), limit=1000, offset=0)
        assert everything == expected and total == len(expected), "D query differs"
        page_2, total = await self.service.query(caller, DeviceFilter(), limit=2, offset=1)
        assert page_2 == expected[1:3] and total == len(expected)
        # Uniqueness, and lookups by reference (F) and identifier (D).
        references = [d.reference_id for d in expected if d.reference_id is not None]
        assert len(references) == len(set(references)), references
        for reference in set(references):
            found = await self.service.list_page(caller, reference_id=reference)
            assert [d.reference_id for d in found.devices] == [reference]
            decomposed = unicodedata.normalize("NFD", reference)  # the filter normalises too
            found = await self.service.list_page(caller, reference_id=decomposed)
            assert [d.reference_id for d in found.devices] == [reference]
        identified = [(d.division_id, d.device_identifier) for d in expected]
        identified = [pair for pair in identified if pair[1] is not None]
        assert len(identified) == len(set(identified)), identified
        for identifier in {name for _, name in identified}:
            where = DeviceFilter(device_identifier=identifier)
            found_d, _ = await self.service.query(caller, where, limit=1000, offset=0)
            assert found_d == [d for d in expected if d.device_identifier == identifier]
        # Field values, as dialect D shows them.
        views = await self.service.views(caller, everything)
        for view in views:
            assert view.values == self.devices[view.device.id].values, view.device.id

    async def check_device(self, device_id: bytes) -> None:
        """The device the step touched, read by id by every caller."""
        model = self.devices.get(device_id)
        for account in self.accounts:
            for caller in account.callers.values():
                visible = self.visible(caller, device_id)
                try:
                    got = await self.service.get(caller, device_id)
                except NotFound:
                    assert visible is None, "a device the model holds is not found"
                    continue
                assert visible is not None and model is not None, "found a device that is gone"
                profile_id = self.accounts[model.account].profiles[model.profile].id
                assert got == model.record(account.id, profile_id)


@pytest.fixture
def world(backend: str | None, tmp_path: Path) -> Iterator[World]:
    """A store of each kind on its own event loop (Hypothesis drives the machine
    synchronously, one `run_until_complete` per call)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(migrate_store(backend, tmp_path))
        store = loop.run_until_complete(open_store(backend, tmp_path))
        try:
            yield World(loop, store)
        finally:
            loop.run_until_complete(store.close())
    finally:
        loop.close()


def test_device_core_agrees_with_a_model(world: World, backend: str | None) -> None:
    machine: Any = type("DeviceMachineRun", (DeviceMachine,), {"world": world})
    examples = EXAMPLES or (100 if backend is None else 20)
    run_state_machine_as_test(
        machine,
        settings=hypothesis.settings(
            max_examples=examples,
            stateful_step_count=STEPS or 30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    outcomes = world.outcomes
    print(f"device state machine: {sum(outcomes.values())} steps", dict(sorted(outcomes.items())))
    # Every rule succeeded, and every kind of refusal came up: the pools do collide.
    for what in ("create_f", "patch_f", "create_d", "put_d", "set_status", "delete"):
        assert outcomes[f"{what} ok"], (what, dict(outcomes))
    for error in ("Conflict", "InvalidInput", "NotFound"):
        assert any(key.endswith(error) for key in outcomes), (error, dict(outcomes))
