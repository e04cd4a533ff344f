"""Bulk import and export of devices (core/bulk.py, core/bulk_import.py) over the real
store, on SQLite and PostgreSQL: the line format, each rule with its line number, all or
nothing, chunks, and the export's order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import msgspec
import pytest

from devreg.core.bulk import export_devices
from devreg.core.bulk_import import MAX_SHOWN, ImportRefused, import_devices
from devreg.core.clock import us_of_datetime
from devreg.core.devices import DeviceService
from devreg.core.errors import NotFound
from devreg.core.ids import new_id, render_prefixed, render_uuid
from devreg.core.profiles import FieldSpec, Profile, ProfileFlags
from devreg.core.records import Device, DeviceStatus, Origin
from devreg.core.store import DeviceImport, DeviceStore
from tests.core.conftest import START, StepClock, Tenant
from tests.support.origins import TEST_ORIGIN


def jsonl(*lines: object) -> list[bytes]:
    """Lines as a file gives them: dicts as JSON, strings as they are."""
    return [
        (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines
    ]


async def stored(store: DeviceStore, tenant: Tenant) -> list[Device]:
    found: list[Device] = []
    for live_mode in (True, False):
        found += await store.devices_oldest_first(
            tenant.account_id, live_mode, after=None, limit=10**6
        )
    return found


async def exported(
    store: DeviceStore, tenant: Tenant, chunk: int = 1000
) -> list[dict[str, object]]:
    blocks = [block async for block in export_devices(store, tenant.account_id, chunk=chunk)]
    return [json.loads(line) for line in b"".join(blocks).splitlines()]


async def refused(store: DeviceStore, tenant: Tenant, lines: list[bytes]) -> ImportRefused:
    before = await stored(store, tenant)
    with pytest.raises(ImportRefused) as caught:
        await import_devices(store, tenant.account_id, lines, origin=TEST_ORIGIN)
    assert await stored(store, tenant) == before, "a refused import wrote something"
    return caught.value


def messages(error: ImportRefused) -> dict[int, str]:
    return {e.line: e.message for e in error.errors}


@pytest.fixture
async def plant(service: DeviceService, tenant: Tenant) -> Profile:
    """A division "Plant" with a profile "Sensor": serial (mandatory), colour (optional),
    devices may not write their record by default."""
    division = await service.profiles.create_division(tenant.live, "Plant")
    return await service.profiles.create_profile(
        tenant.live,
        "Sensor",
        division.id,
        [FieldSpec("serial", mandatory=True), FieldSpec("colour", mandatory=False)],
        ProfileFlags(allow_write=False),
    )


# --- import: what a line becomes ------------------------------------------------------------


async def test_minimal_lines_become_default_devices_in_the_order_of_the_file(
    store: DeviceStore, tenant: Tenant
) -> None:
    lines = jsonl({}, {"reference_id": "b-second"}, "", {"reference_id": "a-third"})
    assert (
        await import_devices(
            store, tenant.account_id, lines, clock=lambda: START, origin=TEST_ORIGIN
        )
        == 3
    )
    devices = await stored(store, tenant)
    assert [d.reference_id for d in devices] == [None, "b-second", "a-third"]
    for device in devices:
        assert device.live_mode is True and device.status is DeviceStatus.ACTIVE
        assert device.profile_id == tenant.profile.id
        assert device.division_id == tenant.profile.division_id
        assert (device.allow_read, device.allow_write, device.allow_renew) == (True, True, True)
        assert device.created_at == device.updated_at == START and device.last_seen is None
        assert device.device_identifier is None and device.version == 1
    # Dialect F lists them newest first, so the last line is the newest device.
    page = await DeviceService(store).list_page(tenant.live, limit=3)
    assert [d.reference_id for d in page.devices] == ["a-third", "b-second", None]


async def test_a_full_line_sets_every_field_of_both_dialects(
    store: DeviceStore, tenant: Tenant, plant: Profile
) -> None:
    device_id = new_id()
    line = {
        "id": render_uuid(device_id),
        "flatpeak_id": render_prefixed("dev", device_id),
        "live_mode": False,
        "reference_id": "REF-1",
        "device_identifier": "sensor-001",
        "division": {"name": "Plant"},
        "device_profile": {"name": "Sensor"},
        "status": "DISABLED",
        "fields": [{"name": "colour", "value": "red"}, {"name": "serial", "value": "S-1"}],
        "device_api_allow_read": False,
        "device_api_allow_write": True,
        "device_api_allow_renew": False,
        "created": "2024-01-02T03:04:05.123456Z",
        "updated": "2024-01-02T05:04:05.5+02:00",  # an offset: the same instant in UTC
        "last_seen": "2024-01-03T00:00:00Z",
    }
    assert await import_devices(store, tenant.account_id, jsonl(line), origin=TEST_ORIGIN) == 1

    device = await store.get_device(tenant.account_id, False, device_id)
    assert device is not None
    assert (device.reference_id, device.device_identifier) == ("REF-1", "sensor-001")
    assert (device.division_id, device.profile_id) == (plant.division.id, plant.profile.id)
    assert device.status is DeviceStatus.DISABLED
    assert (device.allow_read, device.allow_write, device.allow_renew) == (False, True, False)
    assert device.created_at == us_of_datetime(datetime(2024, 1, 2, 3, 4, 5, 123456, UTC))
    assert device.updated_at == us_of_datetime(datetime(2024, 1, 2, 3, 4, 5, 500000, UTC))
    assert device.last_seen == us_of_datetime(datetime(2024, 1, 3, tzinfo=UTC))
    serial, colour = (f.id for f in plant.fields)
    values = await store.field_values([device_id])
    assert values == {device_id: {serial: "S-1", colour: "red"}}
    assert await store.get_device(tenant.account_id, True, device_id) is None  # test mode only


async def test_the_profile_is_found_by_id_then_name_and_gives_the_default_flags(
    store: DeviceStore, tenant: Tenant, plant: Profile
) -> None:
    elsewhere = render_uuid(new_id())  # a profile id of another installation
    lines = jsonl(
        {"device_profile": {"id": render_uuid(plant.profile.id), "name": "renamed since"},
         "fields": [{"name": "serial", "value": "1"}]},
        {"device_profile": {"id": elsewhere, "name": "Sensor"},
         "division": {"id": render_uuid(new_id()), "name": "Plant"},
         "fields": [{"name": "serial", "value": "2"}]},
        {"division": {"id": render_uuid(tenant.profile.division_id)}},
    )  # fmt: skip
    await import_devices(store, tenant.account_id, lines, origin=TEST_ORIGIN)
    first, second, third = await stored(store, tenant)
    assert first.profile_id == second.profile_id == plant.profile.id
    assert (first.allow_read, first.allow_write, first.allow_renew) == (True, False, True)
    assert third.profile_id == tenant.profile.id and third.allow_write is True


async def test_given_times_are_kept_and_missing_ones_are_the_import_time(
    store: DeviceStore, tenant: Tenant
) -> None:
    lines = jsonl({"created": "2020-05-01T00:00:00Z"}, {"updated": "2020-05-01T00:00:00Z"})
    later = START + 10**12
    with pytest.raises(ImportRefused) as caught:
        await import_devices(
            store, tenant.account_id, lines, clock=lambda: later, origin=TEST_ORIGIN
        )
    # created defaults to now, which is after the given update
    assert messages(caught.value) == {2: "updated is before created"}
    await import_devices(
        store, tenant.account_id, lines[:1], clock=lambda: later, origin=TEST_ORIGIN
    )
    (device,) = await stored(store, tenant)
    assert device.created_at == us_of_datetime(datetime(2020, 5, 1, tzinfo=UTC))
    assert device.updated_at == later


# --- import: every kind of bad line, by its number, and nothing written ---------------------

BAD_LINES = [
    ("not json", "JSON is malformed"),
    ('["a list"]', "Expected `object`, got `array`"),
    ('{"colour": "red"}', "unknown field `colour`"),
    ('{"live_mode": "yes"}', "Expected `bool`, got `str` - at `$.live_mode`"),
    ('{"reference_id": 7}', "Expected `str | null`, got `int`"),
    ('{"id": "1234"}', "id is not a UUID"),
    ('{"flatpeak_id": "dev_XYZ"}', "flatpeak_id is not dev_ and 32 lowercase hex digits"),
    (
        json.dumps({"id": render_uuid(new_id()), "flatpeak_id": render_prefixed("dev", new_id())}),
        "id and flatpeak_id name different devices",
    ),
    (json.dumps({"reference_id": "x" * 256}), "reference_id must be at most 255 characters"),
    ('{"reference_id": "a\\u0007b"}', "reference_id must not contain control characters"),
    ('{"device_identifier": "  "}', "device_identifier must not be empty"),
    ('{"device_profile": {"name": "Nope"}}', "(name 'Nope') is not a device profile"),
    ('{"device_profile": {"id": "P-1"}}', "device_profile.id is not a UUID"),
    ('{"division": {"name": "Elsewhere"}}', "division 'Elsewhere' is not the division"),
    ('{"fields": [{"name": "serial", "value": "1"}]}', "'serial' is not a field of device"),
    ('{"fields": [{"value": "1"}]}', "missing required field `name`"),
    ('{"status": "DELETED"}', "Invalid enum value 'DELETED'"),
    ('{"created": "2024-01-01T00:00:00"}', "with a timezone component"),
    ('{"last_seen": "yesterday"}', "Invalid RFC3339 encoded datetime"),
]


@pytest.mark.parametrize(("bad", "expected"), BAD_LINES, ids=[b for b, _ in BAD_LINES])
async def test_a_bad_line_is_reported_with_its_number_and_nothing_is_written(
    store: DeviceStore, tenant: Tenant, bad: str, expected: str
) -> None:
    await import_devices(
        store, tenant.account_id, jsonl({"reference_id": "already"}), origin=TEST_ORIGIN
    )
    lines = jsonl({"reference_id": "before"}, {}, bad, {"reference_id": "after"})
    error = await refused(store, tenant, lines)
    assert error.bad_lines == 1
    ((line, message),) = messages(error).items()
    assert line == 3
    assert expected in message, message


async def test_field_values_follow_dialect_ds_rules(
    store: DeviceStore, tenant: Tenant, plant: Profile
) -> None:
    sensor = {"device_profile": {"name": "Sensor"}}
    lines = jsonl(
        {**sensor, "fields": [{"name": "colour", "value": "red"}]},
        {**sensor, "fields": [{"name": "serial", "value": "x" * 1025}]},
        {**sensor, "fields": [{"name": "serial", "value": "1"}, {"name": "serial", "value": "2"}]},
        {**sensor, "fields": [{"name": "serial", "value": "1"}, {"name": "size", "value": "2"}]},
        {**sensor, "fields": [{"name": "serial", "value": "x" * 1024}]},  # the longest allowed
    )
    error = await refused(store, tenant, lines)
    assert messages(error) == {
        1: "mandatory field 'serial' has no value",
        2: "value of field 'serial' is longer than 1024 characters",
        3: "field 'serial' is given more than once",
        4: "fields[1].name 'size' is not a field of device profile 'Sensor'",
    }


async def test_every_bad_line_is_reported_in_order_up_to_the_cap(
    store: DeviceStore, tenant: Tenant
) -> None:
    lines = jsonl(*[{"reference_id": f"r{n}"} if n % 2 else {"oops": n} for n in range(300)])
    error = await refused(store, tenant, lines)
    assert error.bad_lines == 150
    assert len(error.errors) == MAX_SHOWN
    assert [e.line for e in error.errors] == list(range(1, 2 * MAX_SHOWN, 2))
    assert error.message == "150 bad line(s): nothing was imported"


async def test_unknown_account_is_not_found(store: DeviceStore) -> None:
    with pytest.raises(NotFound, match=r"no account acc_[0-9a-f]{32}"):
        await import_devices(store, new_id(), jsonl({}), origin=TEST_ORIGIN)


# --- import: uniqueness within the file and against the store -------------------------------


async def test_duplicates_within_the_file_name_the_earlier_line(
    store: DeviceStore, tenant: Tenant, plant: Profile
) -> None:
    device_id = render_uuid(new_id())
    sensor = {"device_profile": {"name": "Sensor"}, "fields": [{"name": "serial", "value": "1"}]}
    lines = jsonl(
        {"reference_id": "r1", "id": device_id},
        {**sensor, "device_identifier": "s1"},
        {"reference_id": "r1"},
        {"reference_id": "r1", "live_mode": False},  # the other mode: fine
        {**sensor, "device_identifier": "s1"},
        {"device_identifier": "s1"},  # another division: fine
        {"id": device_id},
    )
    error = await refused(store, tenant, lines)
    assert messages(error) == {
        3: "reference_id 'r1' is also on line 1",
        5: "device_identifier 's1' is also on line 2",
        7: f"id {device_id} is also on line 1",
    }
    await import_devices(
        store, tenant.account_id, [lines[n] for n in (0, 1, 3, 5)], origin=TEST_ORIGIN
    )
    assert len(await stored(store, tenant)) == 4


async def test_values_taken_by_stored_devices_are_refused_and_deleted_ones_are_free(
    store: DeviceStore, tenant: Tenant, service: DeviceService
) -> None:
    kept = await service.create(tenant.live, "kept")
    gone = await service.create(tenant.live, "gone")
    await service.delete(tenant.live, gone.id)
    lines = jsonl(
        {"reference_id": "kept"},
        {"reference_id": "kept", "live_mode": False},
        {"reference_id": "gone"},
        {"id": render_uuid(kept.id)},
        {"flatpeak_id": render_prefixed("dev", gone.id)},  # its row stays: so does its id
    )
    error = await refused(store, tenant, lines)
    assert messages(error) == {
        1: f"reference_id 'kept' is already used by device {render_uuid(kept.id)}",
        4: f"id {render_uuid(kept.id)} is a stored device",
        5: f"id {render_uuid(gone.id)} is a stored device",
    }


@asynccontextmanager
async def counting(
    bulk_import: Callable[[], AbstractAsyncContextManager[DeviceImport]], inserts: list[int]
) -> AsyncIterator[DeviceImport]:
    """The real store's bulk import, noting the size of each insert it is given."""
    async with bulk_import() as real:

        class Counting:
            taken_ids = real.taken_ids
            taken_references = real.taken_references
            taken_identifiers = real.taken_identifiers
            count_devices = real.count_devices

            async def insert_devices_bulk(
                self,
                devices: list[Device],
                field_values: list[tuple[bytes, bytes, str]],
                origin: Origin,
            ) -> None:
                inserts.append(len(devices))
                await real.insert_devices_bulk(devices, field_values, origin)

        yield Counting()


async def test_a_large_file_is_imported_in_chunks_in_one_transaction(
    store: DeviceStore, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts: list[int] = []
    real_bulk_import = store.bulk_import

    def bulk_import() -> AbstractAsyncContextManager[DeviceImport]:
        return counting(real_bulk_import, inserts)

    lines = jsonl(*[{"reference_id": f"r{n}"} for n in range(20_000)])
    # A duplicate of line 1 near the end, 19 chunks later: still found, nothing written.
    with_duplicate = [*lines[:19_998], jsonl({"reference_id": "r0"})[0], *lines[19_999:]]
    error = await refused(store, tenant, with_duplicate)
    assert messages(error) == {19_999: "reference_id 'r0' is also on line 1"}

    monkeypatch.setattr(store, "bulk_import", bulk_import)
    assert await import_devices(store, tenant.account_id, lines, origin=TEST_ORIGIN) == 20_000
    assert inserts == [1000] * 20
    devices = await stored(store, tenant)
    assert len(devices) == 20_000
    assert [devices[0].reference_id, devices[-1].reference_id] == ["r0", "r19999"]


# --- export ---------------------------------------------------------------------------------


async def test_export_is_oldest_first_across_modes_without_deleted_devices(
    store: DeviceStore, tenant: Tenant, plant: Profile
) -> None:
    service = DeviceService(store, StepClock(step=1))
    made = []
    for n in range(7):
        caller = tenant.test if n % 3 == 0 else tenant.live
        made.append(await service.create(caller, f"r{n}"))
    sensor = await service.create_in_profile(
        tenant.live, "s-1", None, plant.profile.id, [(plant.fields[0].id, "S-1")]
    )
    await service.delete(tenant.live, made[4].id)
    await service.set_status(tenant.live, made[5].id, DeviceStatus.DISABLED)

    lines = await exported(store, tenant, chunk=2)  # pages of two: keyset paging
    assert lines == await exported(store, tenant)
    assert [line["reference_id"] for line in lines] == ["r0", "r1", "r2", "r3", "r5", "r6", None]
    assert [line["live_mode"] for line in lines[:4]] == [False, True, True, False]
    assert lines[4]["status"] == "DISABLED"
    assert lines[-1] == {
        "id": render_uuid(sensor.id),
        "flatpeak_id": render_prefixed("dev", sensor.id),
        "live_mode": True,
        "reference_id": None,
        "device_identifier": "s-1",
        "division": {"id": render_uuid(plant.division.id), "name": "Plant"},
        "device_profile": {"id": render_uuid(plant.profile.id), "name": "Sensor"},
        "status": "ACTIVE",
        "fields": [{"name": "serial", "value": "S-1"}],
        "device_api_allow_read": True,
        "device_api_allow_write": False,
        "device_api_allow_renew": True,
        "created": "2023-11-14T22:13:20.000007Z",  # START + 7 us: microseconds kept
        "updated": "2023-11-14T22:13:20.000007Z",
        "last_seen": None,
    }


async def test_an_export_is_refused_line_by_line_in_its_own_account_but_loads_in_another(
    store: DeviceStore, tenant: Tenant, other_tenant: Tenant, service: DeviceService
) -> None:
    for n in range(3):
        await service.create(tenant.live, f"r{n}")
    lines = await exported(store, tenant)
    encoded = [msgspec.json.encode(line) + b"\n" for line in lines]
    error = await refused(store, tenant, encoded)
    assert sorted(messages(error)) == [1, 2, 3]
    assert all("is a stored device" in m for m in messages(error).values())

    # Without the ids (another account of the same installation): everything else is kept;
    # the default division and profile are found by name.
    for line in lines:
        del line["id"], line["flatpeak_id"]
    fresh = [msgspec.json.encode(line) + b"\n" for line in lines]
    assert await import_devices(store, other_tenant.account_id, fresh, origin=TEST_ORIGIN) == 3
    copied = await exported(store, other_tenant)
    for line in copied:
        del line["id"], line["flatpeak_id"], line["division"], line["device_profile"]
    for line in lines:
        del line["division"], line["device_profile"]
    assert copied == lines
