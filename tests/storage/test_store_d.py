"""The DeviceStore methods dialect D needs (divisions, profiles and their fields, field
values, filtered queries, last_seen, certificates), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import pytest

from devreg.changelog.entries import Action
from devreg.core.ids import new_id
from devreg.core.records import (
    Certificate,
    Device,
    DeviceProfile,
    DeviceStatus,
    Division,
    ProfileField,
)
from devreg.core.store import DeviceChange, DeviceFilter, DeviceStore, DuplicateValue
from tests.storage.conftest import NOW, StoredAccount, device_for, stored_account
from tests.support.origins import TEST_ORIGIN, delete_at_store

SECOND = 1_000_000


def division_for(account: StoredAccount, name: str, created_at: int = NOW + 1) -> Division:
    return Division(
        id=new_id(),
        account_id=account.id,
        name=name,
        is_default=False,
        created_at=created_at,
        updated_at=created_at,
    )


def profile_for(
    account: StoredAccount,
    division: Division,
    name: str,
    *,
    created_at: int = NOW + 2,
    allow_write: bool = True,
) -> DeviceProfile:
    return DeviceProfile(
        id=new_id(),
        account_id=account.id,
        division_id=division.id,
        name=name,
        is_default=False,
        allow_read=True,
        allow_write=allow_write,
        allow_renew=False,
        created_at=created_at,
        updated_at=created_at,
    )


def fields_for(profile: DeviceProfile, *specs: tuple[str, bool]) -> list[ProfileField]:
    return [
        ProfileField(id=new_id(), profile_id=profile.id, name=name, mandatory=mandatory, position=i)
        for i, (name, mandatory) in enumerate(specs)
    ]


class Plant:
    """A division with a profile of two fields, stored."""

    def __init__(self, account: StoredAccount) -> None:
        self.account = account
        self.division = division_for(account, "Plant")
        self.profile = profile_for(account, self.division, "Sensor")
        self.fields = fields_for(self.profile, ("serial", True), ("colour", False))

    async def store_in(self, store: DeviceStore) -> Plant:
        await store.insert_division(self.division, TEST_ORIGIN)
        await store.insert_profile(self.profile, self.fields, TEST_ORIGIN)
        return self

    @property
    def serial(self) -> bytes:
        return self.fields[0].id

    @property
    def colour(self) -> bytes:
        return self.fields[1].id

    def device(self, identifier: str, *, live_mode: bool = True, created_at: int = NOW) -> Device:
        return msgspec.structs.replace(
            device_for(self.account, live_mode=live_mode, created_at=created_at),
            device_identifier=identifier,
            division_id=self.division.id,
            profile_id=self.profile.id,
        )


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store, "Acme")


@pytest.fixture
async def plant(store: DeviceStore, account: StoredAccount) -> Plant:
    return await Plant(account).store_in(store)


# --- divisions -----------------------------------------------------------------------------


async def test_divisions_are_inserted_listed_and_found(
    store: DeviceStore, account: StoredAccount
) -> None:
    north = division_for(account, "North", NOW + 2)
    south = division_for(account, "South", NOW + 1)
    await store.insert_division(north, TEST_ORIGIN)
    await store.insert_division(south, TEST_ORIGIN)
    assert await store.get_division(account.id, north.id) == north
    assert await store.list_divisions(account.id) == [account.new.division, south, north]


async def test_divisions_are_scoped_to_their_account(
    store: DeviceStore, account: StoredAccount
) -> None:
    other = await stored_account(store, "Other")
    theirs = division_for(other, "Theirs")
    await store.insert_division(theirs, TEST_ORIGIN)
    assert await store.get_division(account.id, theirs.id) is None
    assert await store.get_division(account.id, new_id()) is None
    assert await store.list_divisions(account.id) == [account.new.division]
    assert await store.list_divisions(new_id()) == []


async def test_duplicate_division_name_is_refused(
    store: DeviceStore, account: StoredAccount
) -> None:
    await store.insert_division(division_for(account, "North"), TEST_ORIGIN)
    again = division_for(account, "North")
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_division(again, TEST_ORIGIN)
    assert caught.value.field == "division_name"
    assert await store.get_division(account.id, again.id) is None
    # Another account may use the name; names differing in case are different names.
    other = await stored_account(store, "Other")
    await store.insert_division(division_for(other, "North"), TEST_ORIGIN)
    await store.insert_division(division_for(account, "north", created_at=NOW + 2), TEST_ORIGIN)
    assert [d.name for d in await store.list_divisions(account.id)] == [
        "Default",
        "North",
        "north",
    ]


# --- profiles and fields -------------------------------------------------------------------


async def test_profile_with_fields_roundtrip_in_declared_order(
    store: DeviceStore, account: StoredAccount
) -> None:
    division = division_for(account, "Plant")
    await store.insert_division(division, TEST_ORIGIN)
    profile = profile_for(account, division, "Sensor", allow_write=False)
    made = fields_for(profile, ("zeta", True), ("alpha", False), ("mid", True))
    # Store them in reverse order of position and id: the position decides the order.
    reordered = [msgspec.structs.replace(f, position=2 - f.position) for f in made]
    await store.insert_profile(profile, reordered, TEST_ORIGIN)
    assert await store.get_profile(account.id, profile.id) == profile
    fields = (await store.profile_fields([profile.id]))[profile.id]
    assert [f.name for f in fields] == ["mid", "alpha", "zeta"]
    assert fields == sorted(reordered, key=lambda f: f.position)
    assert await store.list_profiles(account.id) == [account.new.profile, profile]
    assert await store.default_profile(account.id) == account.new.profile


async def test_profile_fields_of_several_profiles(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    bare = profile_for(account, plant.division, "Bare")
    await store.insert_profile(bare, [], TEST_ORIGIN)
    unknown = new_id()
    found = await store.profile_fields([plant.profile.id, bare.id, account.new.profile.id, unknown])
    assert found == {
        plant.profile.id: plant.fields,
        bare.id: [],
        account.new.profile.id: [],
        unknown: [],
    }
    assert await store.profile_fields([]) == {}


async def test_profiles_are_scoped_to_their_account(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    other = await stored_account(store, "Other")
    assert await store.get_profile(other.id, plant.profile.id) is None
    assert await store.list_profiles(other.id) == [other.new.profile]


async def test_duplicate_field_name_stores_nothing_of_the_profile(
    store: DeviceStore, account: StoredAccount
) -> None:
    profile = profile_for(account, account.new.division, "Twice")
    fields = fields_for(profile, ("serial", True), ("colour", False), ("serial", False))
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_profile(profile, fields, TEST_ORIGIN)
    assert caught.value.field == "field_name"
    assert await store.get_profile(account.id, profile.id) is None
    assert await store.list_profiles(account.id) == [account.new.profile]
    assert await store.profile_fields([profile.id]) == {profile.id: []}
    # Nothing half-written blocks a corrected retry with the same ids.
    await store.insert_profile(profile, fields[:2], TEST_ORIGIN)
    assert (await store.profile_fields([profile.id]))[profile.id] == fields[:2]


async def test_duplicate_profile_name_is_refused(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    again = profile_for(account, account.new.division, "Sensor")
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_profile(again, fields_for(again, ("x", False)), TEST_ORIGIN)
    assert caught.value.field == "profile_name"
    assert await store.get_profile(account.id, again.id) is None
    assert await store.profile_fields([again.id]) == {again.id: []}


# --- devices with field values -------------------------------------------------------------


async def test_insert_device_with_values(store: DeviceStore, plant: Plant) -> None:
    device = plant.device("gw-1")
    await store.insert_device(device, {plant.serial: "SN-1", plant.colour: "red ⚡"}, TEST_ORIGIN)
    assert await store.get_device(plant.account.id, True, device.id) == device
    assert await store.field_values([device.id]) == {
        device.id: {plant.serial: "SN-1", plant.colour: "red ⚡"}
    }


async def test_insert_device_with_values_is_all_or_nothing(
    store: DeviceStore, plant: Plant
) -> None:
    device = plant.device("gw-1")
    with pytest.raises(Exception):  # the second value names no field: foreign key violation
        await store.insert_device(device, {plant.serial: "SN-1", new_id(): "x"}, TEST_ORIGIN)
    assert await store.get_device(plant.account.id, True, device.id, include_deleted=True) is None
    assert await store.field_values([device.id]) == {}
    # The identifier is still free, and the store still usable.
    await store.insert_device(device, {plant.serial: "SN-1"}, TEST_ORIGIN)
    assert await store.field_values([device.id]) == {device.id: {plant.serial: "SN-1"}}


async def test_duplicate_identifier_with_values_writes_no_values(
    store: DeviceStore, plant: Plant
) -> None:
    first = plant.device("gw-1")
    await store.insert_device(first, {plant.serial: "first"}, TEST_ORIGIN)
    second = plant.device("gw-1")
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_device(second, {plant.serial: "second"}, TEST_ORIGIN)
    assert caught.value.field == "device_identifier"
    assert await store.field_values([first.id, second.id]) == {first.id: {plant.serial: "first"}}


async def test_identifier_is_unique_per_division_and_mode_while_not_deleted(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    first = plant.device("gw-1")
    await store.insert_device(first, {}, TEST_ORIGIN)
    await store.insert_device(plant.device("gw-1", live_mode=False), {}, TEST_ORIGIN)
    elsewhere = msgspec.structs.replace(
        device_for(account), device_identifier="gw-1"
    )  # the default division
    await store.insert_device(elsewhere, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, first.id, NOW)
    again = plant.device("gw-1")
    await store.insert_device(again, {}, TEST_ORIGIN)
    assert await store.get_device(account.id, True, again.id) == again


async def test_field_values_of_several_devices(store: DeviceStore, plant: Plant) -> None:
    one, two, bare = plant.device("one"), plant.device("two"), plant.device("bare")
    await store.insert_device(one, {plant.serial: "1"}, TEST_ORIGIN)
    await store.insert_device(two, {plant.serial: "2", plant.colour: "blue"}, TEST_ORIGIN)
    await store.insert_device(bare, {}, TEST_ORIGIN)
    assert await store.field_values([one.id, two.id, bare.id, new_id()]) == {
        one.id: {plant.serial: "1"},
        two.id: {plant.serial: "2", plant.colour: "blue"},
    }
    assert await store.field_values([]) == {}


async def test_update_fields_with_values_replaces_them_exactly(
    store: DeviceStore, plant: Plant
) -> None:
    device = plant.device("gw-1")
    neighbour = plant.device("gw-2")
    await store.insert_device(device, {plant.serial: "old", plant.colour: "red"}, TEST_ORIGIN)
    await store.insert_device(neighbour, {plant.serial: "n", plant.colour: "n"}, TEST_ORIGIN)
    account_id = plant.account.id
    updated = await store.update_device(
        account_id,
        True,
        device.id,
        DeviceChange(device_identifier="renamed", values={plant.serial: "new"}),
        NOW + 5,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert updated is not None
    assert updated.device_identifier == "renamed"
    assert updated.version == device.version + 1
    assert updated.updated_at == NOW + 5
    assert await store.field_values([device.id]) == {device.id: {plant.serial: "new"}}
    # No changes but new values: still a write, with a new version.
    again = await store.update_device(
        account_id,
        True,
        device.id,
        DeviceChange(values={plant.colour: "x"}),
        NOW + 6,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert again is not None and again.version == device.version + 2
    assert await store.field_values([device.id]) == {device.id: {plant.colour: "x"}}
    # Empty values delete them all; None leaves them alone.
    await store.update_device(
        account_id,
        True,
        device.id,
        DeviceChange(values={}),
        NOW + 7,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert await store.field_values([device.id]) == {}
    await store.insert_device(plant.device("gw-3"), {}, TEST_ORIGIN)
    await store.update_device(
        account_id,
        True,
        device.id,
        DeviceChange(values={plant.serial: "y"}),
        NOW + 8,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    await store.update_device(
        account_id,
        True,
        device.id,
        DeviceChange(allow_read=False),
        NOW + 9,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert await store.field_values([device.id]) == {device.id: {plant.serial: "y"}}
    assert await store.field_values([neighbour.id]) == {
        neighbour.id: {plant.serial: "n", plant.colour: "n"}
    }


async def test_failed_update_with_values_changes_nothing(store: DeviceStore, plant: Plant) -> None:
    await store.insert_device(plant.device("taken"), {}, TEST_ORIGIN)
    device = plant.device("gw-1")
    await store.insert_device(device, {plant.serial: "old", plant.colour: "red"}, TEST_ORIGIN)
    account_id = plant.account.id
    with pytest.raises(DuplicateValue):
        await store.update_device(
            account_id,
            True,
            device.id,
            DeviceChange(device_identifier="taken", values={}),
            NOW + 5,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
    with pytest.raises(Exception):  # a value for no field: foreign key violation
        await store.update_device(
            account_id,
            True,
            device.id,
            DeviceChange(values={new_id(): "x"}),
            NOW + 6,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
    assert await store.get_device(account_id, True, device.id) == device
    assert await store.field_values([device.id]) == {
        device.id: {plant.serial: "old", plant.colour: "red"}
    }


async def test_update_with_values_of_a_missing_device_writes_nothing(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    device = plant.device("gw-1")
    await store.insert_device(device, {plant.serial: "mine"}, TEST_ORIGIN)
    other = await stored_account(store, "Other")
    assert (
        await store.update_device(
            other.id,
            True,
            device.id,
            DeviceChange(values={plant.serial: "x"}),
            NOW + 1,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
        is None
    )
    assert (
        await store.update_device(
            account.id,
            False,
            device.id,
            DeviceChange(values={plant.serial: "x"}),
            NOW + 1,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
        is None
    )
    assert await store.field_values([device.id]) == {device.id: {plant.serial: "mine"}}
    assert await store.get_device(account.id, True, device.id) == device


# --- query_devices -------------------------------------------------------------------------


async def test_query_devices_filters_pages_and_counts(
    store: DeviceStore, account: StoredAccount, plant: Plant
) -> None:
    other_profile = profile_for(account, plant.division, "Other")
    await store.insert_profile(other_profile, [], TEST_ORIGIN)
    made = [plant.device(f"d{i}", created_at=NOW + i * SECOND) for i in range(5)]
    made[3] = msgspec.structs.replace(made[3], profile_id=other_profile.id)
    for device in reversed(made):  # insertion order does not decide the order
        await store.insert_device(device, {}, TEST_ORIGIN)
    in_default = msgspec.structs.replace(
        device_for(account, created_at=NOW + 10 * SECOND), device_identifier="d1"
    )
    await store.insert_device(in_default, {}, TEST_ORIGIN)
    # d4 is touched later, so its updated_at is the latest.
    d4 = await store.update_device(
        account.id,
        True,
        made[4].id,
        DeviceChange(),
        NOW + 20 * SECOND,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert d4 is not None
    made[4] = d4
    # Left out whatever the filter: deleted, test mode, another account.
    gone = plant.device("gone", created_at=NOW + 2 * SECOND)
    await store.insert_device(gone, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, gone.id, NOW)
    await store.insert_device(plant.device("d0", live_mode=False), {}, TEST_ORIGIN)
    other = await stored_account(store, "Other")
    await store.insert_device(device_for(other), {}, TEST_ORIGIN)

    async def found(limit: int = 100, offset: int = 0, **where: object) -> tuple[list[Device], int]:
        given = DeviceFilter(**where)  # type: ignore[arg-type]
        page = await store.query_devices(account.id, True, given, limit=limit, offset=offset)
        return page, await store.count_matching(account.id, True, given, at_most=1000)

    everything = [*made, in_default]
    assert await found() == (everything, 6)
    assert await found(limit=2) == (everything[:2], 6)
    assert await found(limit=2, offset=2) == (everything[2:4], 6)
    assert await found(limit=2, offset=6) == ([], 6)
    assert await found(device_identifier="d1") == ([made[1], in_default], 2)
    assert await found(device_identifier="d1", division_id=plant.division.id) == ([made[1]], 1)
    assert await found(division_id=account.new.division.id) == ([in_default], 1)
    assert await found(profile_id=other_profile.id) == ([made[3]], 1)
    assert await found(limit=1, profile_id=plant.profile.id) == ([made[0]], 4)
    assert await found(created_from=NOW + SECOND, created_to=NOW + 3 * SECOND) == (made[1:4], 3)
    assert await found(created_from=NOW + 4 * SECOND) == ([made[4], in_default], 2)
    assert await found(created_to=NOW) == ([made[0]], 1)
    assert await found(updated_from=NOW + 11 * SECOND) == ([made[4]], 1)
    assert await found(updated_to=NOW + 10 * SECOND) == ([*made[:4], in_default], 5)
    assert await found(device_identifier="nope") == ([], 0)


# --- last_seen and lookup by id --------------------------------------------------------------


async def test_touch_last_seen_changes_neither_version_nor_updated_at(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    await store.touch_last_seen(device.id, NOW + 42)
    stored = await store.get_device(account.id, True, device.id)
    assert stored == msgspec.structs.replace(device, last_seen=NOW + 42)


async def test_touch_last_seen_skips_deleted_devices(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    deleted = await delete_at_store(store, account.id, True, device.id, NOW + 1)
    await store.touch_last_seen(device.id, NOW + 42)
    await store.touch_last_seen(new_id(), NOW + 42)  # no such device: nothing to do
    assert await store.get_device(account.id, True, device.id, include_deleted=True) == deleted


async def test_get_device_by_id_whatever_the_account_but_not_deleted(
    store: DeviceStore, account: StoredAccount
) -> None:
    live = device_for(account)
    test = device_for(account, live_mode=False)
    await store.insert_device(live, {}, TEST_ORIGIN)
    await store.insert_device(test, {}, TEST_ORIGIN)
    assert await store.get_device_by_id(live.id) == live
    assert await store.get_device_by_id(test.id) == test
    assert await store.get_device_by_id(new_id()) is None
    await store.update_device(
        account.id,
        False,
        test.id,
        DeviceChange(status=DeviceStatus.DISABLED),
        NOW,
        TEST_ORIGIN,
        Action.DEVICE_DISABLE,
    )
    disabled = await store.get_device_by_id(test.id)
    assert disabled is not None and disabled.status is DeviceStatus.DISABLED
    await delete_at_store(store, account.id, True, live.id, NOW)
    assert await store.get_device_by_id(live.id) is None


# --- certificates ---------------------------------------------------------------------------


def key_hash(account_id: bytes, key: bytes) -> bytes:
    """Test keys are named per account: the session's PostgreSQL database is shared, and a
    key belongs to one device across all accounts."""
    return hashlib.sha256(account_id + key).digest()


def certificate_for(
    device: Device, key: bytes, *, created_at: int = NOW, serial: str | None = None
) -> Certificate:
    cert_id = new_id()
    return Certificate(
        id=cert_id,
        account_id=device.account_id,
        device_id=device.id,
        serial=serial or cert_id.hex().upper(),
        fingerprint=hashlib.sha256(cert_id).digest(),
        public_key_hash=key_hash(device.account_id, key),
        pem=f"-----BEGIN CERTIFICATE-----\n{cert_id.hex()}\n-----END CERTIFICATE-----\n",
        not_before=created_at - SECOND,
        not_after=created_at + 90 * 86_400 * SECOND,
        issuer="devreg",
        created_at=created_at,
    )


async def test_certificates_are_inserted_listed_and_found(
    store: DeviceStore, account: StoredAccount
) -> None:
    device, neighbour = device_for(account), device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    await store.insert_device(neighbour, {}, TEST_ORIGIN)
    second = certificate_for(device, b"key-1", created_at=NOW + 2)
    first = certificate_for(device, b"key-1", created_at=NOW + 1)
    revoked = msgspec.structs.replace(
        certificate_for(device, b"key-2", created_at=NOW + 3),
        revoked_at=NOW + 4,
        revocation_reason="keyCompromise",
        issuer="CN=Other CA",
    )
    theirs = certificate_for(neighbour, b"key-3")
    for cert in (second, first, revoked, theirs):
        await store.insert_certificate(cert, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    assert await store.list_certificates(account.id, device.id) == [first, second, revoked]
    assert await store.list_certificates(account.id, neighbour.id) == [theirs]
    assert await store.find_certificate(revoked.fingerprint) == revoked
    assert await store.find_certificate(first.fingerprint) == first
    assert await store.find_certificate(hashlib.sha256(b"nothing").digest()) is None


async def test_certificates_are_listed_only_for_their_account(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    await store.insert_certificate(
        certificate_for(device, b"key"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )
    other = await stored_account(store, "Other")
    assert await store.list_certificates(other.id, device.id) == []
    assert await store.list_certificates(account.id, new_id()) == []


async def test_serial_and_fingerprint_are_unique(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    cert = certificate_for(device, b"key")
    await store.insert_certificate(cert, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    same_serial = msgspec.structs.replace(certificate_for(device, b"key"), serial=cert.serial)
    same_print = msgspec.structs.replace(
        certificate_for(device, b"key"), fingerprint=cert.fingerprint
    )
    for clash in (same_serial, same_print):
        with pytest.raises(Exception):  # the driver's unique violation
            await store.insert_certificate(clash, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    assert await store.list_certificates(account.id, device.id) == [cert]


async def test_key_holders(store: DeviceStore, account: StoredAccount) -> None:
    one, two, three = device_for(account), device_for(account), device_for(account)
    for device in (one, two, three):
        await store.insert_device(device, {}, TEST_ORIGIN)
    await store.insert_certificate(
        certificate_for(one, b"shared"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )
    await store.insert_certificate(
        certificate_for(one, b"shared"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )
    with pytest.raises(DuplicateValue) as refused:  # one key, one device: the database decides
        await store.insert_certificate(
            certificate_for(two, b"shared"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
        )
    assert refused.value.field == "public_key"
    assert await store.list_certificates(account.id, two.id) == []
    await store.insert_certificate(
        certificate_for(three, b"own"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )
    assert await store.key_holders(key_hash(account.id, b"shared")) == {one.id}
    assert await store.key_holders(key_hash(account.id, b"own")) == {three.id}
    assert await store.key_holders(key_hash(account.id, b"unused")) == set()


async def test_concurrent_claims_of_one_key_leave_exactly_one_holder(
    store: DeviceStore, account: StoredAccount
) -> None:
    devices = [device_for(account) for _ in range(8)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    results = await asyncio.gather(
        *(
            store.insert_certificate(
                certificate_for(d, b"raced"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
            )
            for d in devices
        ),
        return_exceptions=True,
    )
    winners = [d.id for d, r in zip(devices, results, strict=True) if r is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, DuplicateValue) for r in results if r is not None)
    assert await store.key_holders(key_hash(account.id, b"raced")) == set(winners)


async def test_removing_a_profile_field_bumps_the_version_of_devices_that_had_it(
    store: DeviceStore, account: StoredAccount
) -> None:
    plant = await Plant(account).store_in(store)
    with_value = plant.device("with")
    without = plant.device("without")
    await store.insert_device(with_value, {plant.serial: "s", plant.colour: "c"}, TEST_ORIGIN)
    await store.insert_device(without, {plant.serial: "s"}, TEST_ORIGIN)
    later = msgspec.structs.replace(plant.profile, updated_at=NOW + 50)
    await store.update_profile(later, [plant.fields[0]], [plant.colour], TEST_ORIGIN)
    bumped = await store.get_device(account.id, True, with_value.id)
    untouched = await store.get_device(account.id, True, without.id)
    assert bumped is not None and untouched is not None
    assert (bumped.version, bumped.updated_at) == (with_value.version + 1, NOW + 50)
    assert untouched == without
    assert (await store.field_values([with_value.id]))[with_value.id] == {plant.serial: "s"}


async def test_deleting_revokes_the_certificates_in_the_same_write(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    cert = certificate_for(device, b"deleted-" + device.id)
    await store.insert_certificate(cert, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    gone = await store.update_device(
        account.id, True, device.id, DeviceChange(status=DeviceStatus.DELETED), NOW + 9,
        TEST_ORIGIN, Action.DEVICE_DELETE, revoke_reason="cessationOfOperation",
    )  # fmt: skip
    assert gone is not None and gone.status is DeviceStatus.DELETED
    (listed,) = await store.list_certificates(account.id, device.id)
    assert (listed.revoked_at, listed.revocation_reason) == (NOW + 9, "cessationOfOperation")


async def test_a_device_write_needs_the_device_still_active_and_writable(
    store: DeviceStore, account: StoredAccount
) -> None:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    await store.update_device(
        account.id,
        True,
        device.id,
        DeviceChange(allow_write=False),
        NOW + 1,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    refused = await store.update_device(
        account.id,
        True,
        device.id,
        DeviceChange(device_identifier="x"),
        NOW + 2,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
        writable_only=True,
    )
    assert refused is None
    stored = await store.get_device(account.id, True, device.id)
    assert stored is not None and stored.device_identifier is None
    allowed = await store.update_device(
        account.id,
        True,
        device.id,
        DeviceChange(device_identifier="x"),
        NOW + 3,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    assert allowed is not None and allowed.device_identifier == "x"
