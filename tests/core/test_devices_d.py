"""DeviceService's dialect D operations (devices in a division and profile, with field
values), over the real store on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devreg.core.access import DeviceFlags
from devreg.core.devices import MAX_FIELD_VALUE, MAX_IDENTIFIER, DeviceService
from devreg.core.errors import Conflict, InvalidInput, NotFound
from devreg.core.ids import new_id, render_uuid
from devreg.core.profiles import FieldSpec, Profile, ProfileFlags
from devreg.core.records import Caller, Device, DeviceStatus
from devreg.core.store import DeviceFilter
from tests.core.conftest import START, StepClock, Tenant
from tests.support.origins import device_caller

LATER = START + 1_000_000  # after the account's defaults: no ties in creation order
EVERYTHING = DeviceFilter()


@dataclass
class Setup:
    """A division with a profile of one mandatory and one optional field."""

    profile: Profile

    @property
    def division_id(self) -> bytes:
        return self.profile.division.id

    @property
    def profile_id(self) -> bytes:
        return self.profile.profile.id

    @property
    def serial(self) -> bytes:  # mandatory
        return self.profile.fields[0].id

    @property
    def colour(self) -> bytes:  # optional
        return self.profile.fields[1].id


async def make_setup(
    service: DeviceService, caller: Caller, name: str = "Plant", flags: ProfileFlags | None = None
) -> Setup:
    division = await service.profiles.create_division(caller, name)
    profile = await service.profiles.create_profile(
        caller,
        f"{name} sensor",
        division.id,
        [FieldSpec("serial", mandatory=True), FieldSpec("colour", mandatory=False)],
        flags or ProfileFlags(),
    )
    return Setup(profile)


@pytest.fixture
def later(clock: StepClock) -> StepClock:
    clock.value = LATER
    return clock


@pytest.fixture
async def plant(service: DeviceService, tenant: Tenant, later: StepClock) -> Setup:
    return await make_setup(service, tenant.live)


async def everything(service: DeviceService, caller: Caller) -> list[Device]:
    devices, total = await service.query(caller, EVERYTHING, limit=1000, offset=0)
    assert total == len(devices)
    return devices


async def values_of(service: DeviceService, caller: Caller, device: Device) -> dict[bytes, str]:
    (view,) = await service.views(caller, [device])
    return view.values


async def replaced(
    service: DeviceService,
    caller: Caller,
    device_id: bytes,
    identifier: str | None,
    given: list[tuple[bytes, str]],
    flags: DeviceFlags | None = None,
) -> Device:
    """`service.replace`, checking that what it answers is what a later read finds."""
    view = await service.replace(caller, device_id, identifier, given, flags or DeviceFlags())
    (stored,) = await service.views(caller, [await service.get(caller, view.device.id)])
    assert view == stored
    return view.device


async def new_device(
    service: DeviceService, caller: Caller, setup: Setup, identifier: str, serial: str = "S-1"
) -> Device:
    return await service.create_in_profile(
        caller, identifier, setup.division_id, setup.profile_id, [(setup.serial, serial)]
    )


# --- create_in_profile -------------------------------------------------------------------


async def test_defaults_when_division_and_profile_are_omitted(
    service: DeviceService, tenant: Tenant
) -> None:
    device = await service.create_in_profile(tenant.live, "thermostat-1", None, None, [])
    assert device.device_identifier == "thermostat-1"
    assert device.division_id == tenant.profile.division_id
    assert device.profile_id == tenant.profile.id
    assert device.status is DeviceStatus.ACTIVE
    assert (device.allow_read, device.allow_write, device.allow_renew) == (True, True, True)
    assert device.reference_id is None
    assert device.last_seen is None
    assert device.version == 1
    assert await service.get(tenant.live, device.id) == device
    (view,) = await service.views(tenant.live, [device])
    assert view.profile.profile == tenant.profile
    assert view.profile.division.is_default is True
    assert view.values == {}


async def test_create_with_values_stores_them(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    device = await service.create_in_profile(
        tenant.live,
        "meter-1",
        plant.division_id,
        plant.profile_id,
        [(plant.colour, "blue ⚡"), (plant.serial, "SN-42")],
    )
    assert device.division_id == plant.division_id
    assert device.profile_id == plant.profile_id
    assert await values_of(service, tenant.live, device) == {
        plant.serial: "SN-42",
        plant.colour: "blue ⚡",
    }


async def test_profile_alone_decides_the_division_and_the_flags(
    service: DeviceService, tenant: Tenant, later: StepClock
) -> None:
    closed = await make_setup(
        service,
        tenant.live,
        "Closed",
        ProfileFlags(allow_read=True, allow_write=False, allow_renew=False),
    )
    device = await service.create_in_profile(
        tenant.live, "locked", None, closed.profile_id, [(closed.serial, "x")]
    )
    assert device.division_id == closed.division_id
    assert (device.allow_read, device.allow_write, device.allow_renew) == (True, False, False)


async def test_division_that_is_not_the_profiles_is_refused(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant, plant: Setup
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_in_profile(
            tenant.live, "x", tenant.profile.division_id, plant.profile_id, [(plant.serial, "1")]
        )
    assert "division" in caught.value.message
    assert caught.value.field == "division_id"
    # The default profile lives in the default division, not in the plant's.
    with pytest.raises(InvalidInput):
        await service.create_in_profile(tenant.live, "x", plant.division_id, None, [])
    # Someone else's division, or none at all: not found.
    for division_id in (other_tenant.profile.division_id, new_id()):
        with pytest.raises(NotFound):
            await service.create_in_profile(
                tenant.live, "x", division_id, plant.profile_id, [(plant.serial, "1")]
            )
    assert await everything(service, tenant.live) == []


async def test_unknown_or_foreign_profile_is_not_found(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant
) -> None:
    for profile_id in (other_tenant.profile.id, new_id()):
        with pytest.raises(NotFound):
            await service.create_in_profile(tenant.live, "x", None, profile_id, [])
    assert await everything(service, tenant.live) == []
    assert await everything(service, other_tenant.live) == []


async def test_identifier_of_one_and_of_255_characters(
    service: DeviceService, tenant: Tenant
) -> None:
    short = await service.create_in_profile(tenant.live, "a", None, None, [])
    long = await service.create_in_profile(tenant.live, "ü" * MAX_IDENTIFIER, None, None, [])
    assert (await service.get(tenant.live, short.id)).device_identifier == "a"
    assert (await service.get(tenant.live, long.id)).device_identifier == "ü" * MAX_IDENTIFIER


@pytest.mark.parametrize(
    ("identifier", "word"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * (MAX_IDENTIFIER + 1), str(MAX_IDENTIFIER)),
        ("line\nbreak", "control"),
        ("tab\there", "control"),
        ("nul\x00", "control"),
        ("del\x7f", "control"),
    ],
    ids=["empty", "blank", "256 chars", "newline", "tab", "nul", "delete"],
)
async def test_bad_identifier_is_refused_and_nothing_is_written(
    service: DeviceService, tenant: Tenant, identifier: str, word: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_in_profile(tenant.live, identifier, None, None, [])
    assert "device_identifier" in caught.value.message
    assert word in caught.value.message
    assert await everything(service, tenant.live) == []


async def test_identifier_is_unique_per_division_and_mode(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    first = await new_device(service, tenant.live, plant, "gw-1")
    with pytest.raises(Conflict) as caught:
        await new_device(service, tenant.live, plant, "gw-1", serial="other")
    assert caught.value.code == "duplicate_device_identifier"
    division = render_uuid(first.division_id)
    assert caught.value.message == (  # DigiCert's create page, word for word
        f"Device with division {division} and identifier gw-1 already exists"
    )
    assert await everything(service, tenant.live) == [first]
    assert await values_of(service, tenant.live, first) == {plant.serial: "S-1"}
    # The same identifier is free in another division, and in the other mode.
    elsewhere = await service.create_in_profile(tenant.live, "gw-1", None, None, [])
    in_test = await new_device(service, tenant.test, plant, "gw-1")
    assert elsewhere.division_id != first.division_id
    assert in_test.live_mode is False


async def test_identifier_is_free_again_after_delete(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    first = await new_device(service, tenant.live, plant, "gw-1")
    await service.delete(tenant.live, first.id)
    second = await new_device(service, tenant.live, plant, "gw-1", serial="S-2")
    assert second.id != first.id
    assert await everything(service, tenant.live) == [second]
    assert await values_of(service, tenant.live, second) == {plant.serial: "S-2"}


async def test_a_value_of_exactly_1024_characters_is_kept(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    value = "v" * MAX_FIELD_VALUE
    device = await new_device(service, tenant.live, plant, "d", serial=value)
    assert await values_of(service, tenant.live, device) == {plant.serial: value}


@dataclass
class BadValues:
    name: str
    words: list[str]

    def values(self, plant: Setup, foreign_field: bytes) -> list[tuple[bytes, str]]:
        return {
            "unknown field": [(plant.serial, "1"), (new_id(), "x")],
            "other profile's field": [(plant.serial, "1"), (foreign_field, "x")],
            "same field twice": [(plant.serial, "1"), (plant.colour, "a"), (plant.colour, "b")],
            "value too long": [(plant.serial, "1"), (plant.colour, "c" * (MAX_FIELD_VALUE + 1))],
            "mandatory missing": [(plant.colour, "red")],
            "mandatory empty": [(plant.serial, ""), (plant.colour, "red")],
        }[self.name]


BAD_VALUES = [
    BadValues("unknown field", ["fields[1]"]),
    BadValues("other profile's field", ["fields[1]"]),
    BadValues("same field twice", ["colour", "more than once"]),
    BadValues("value too long", ["colour", str(MAX_FIELD_VALUE)]),
    BadValues("mandatory missing", ["serial", "mandatory"]),
    BadValues("mandatory empty", ["serial", "mandatory"]),
]


@pytest.fixture
async def foreign_field(service: DeviceService, tenant: Tenant, plant: Setup) -> bytes:
    other = await make_setup(service, tenant.live, "Other")
    return other.colour


@pytest.mark.parametrize("case", BAD_VALUES, ids=[case.name for case in BAD_VALUES])
async def test_bad_values_on_create_are_refused_and_nothing_is_written(
    service: DeviceService, tenant: Tenant, plant: Setup, foreign_field: bytes, case: BadValues
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_in_profile(
            tenant.live,
            "dev",
            plant.division_id,
            plant.profile_id,
            case.values(plant, foreign_field),
        )
    for word in case.words:
        assert word in caught.value.message, caught.value.message
    assert await everything(service, tenant.live) == []
    # The identifier was not taken by the refused device either.
    await new_device(service, tenant.live, plant, "dev")


# --- replace -----------------------------------------------------------------------------


@pytest.fixture
async def meter(service: DeviceService, tenant: Tenant, plant: Setup) -> Device:
    return await service.create_in_profile(
        tenant.live,
        "meter",
        plant.division_id,
        plant.profile_id,
        [(plant.serial, "SN-1"), (plant.colour, "red")],
    )


async def test_replace_keeps_the_identifier_when_none_and_deletes_omitted_values(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    updated = await replaced(service, tenant.live, meter.id, None, [(plant.serial, "SN-2")])
    assert updated.device_identifier == "meter"
    assert updated.version == meter.version + 1
    assert updated.updated_at > meter.updated_at
    assert updated.created_at == meter.created_at
    assert (updated.allow_read, updated.allow_write, updated.allow_renew) == (True, True, True)
    assert await service.get(tenant.live, meter.id) == updated
    assert await values_of(service, tenant.live, updated) == {plant.serial: "SN-2"}


async def test_replace_sets_identifier_and_values(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    updated = await replaced(
        service,
        tenant.live,
        meter.id,
        "New Device",
        [(plant.colour, "green"), (plant.serial, "SN-9")],
    )
    assert updated.device_identifier == "New Device"
    stored = await service.get(tenant.live, meter.id)
    assert stored.device_identifier == "New Device"
    assert await values_of(service, tenant.live, stored) == {
        plant.serial: "SN-9",
        plant.colour: "green",
    }


async def test_every_replace_bumps_the_version(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    same = [(plant.serial, "SN-1"), (plant.colour, "red")]
    first = await replaced(service, tenant.live, meter.id, None, same)
    second = await replaced(service, tenant.live, meter.id, None, same)
    assert [meter.version, first.version, second.version] == [1, 2, 3]


async def test_replace_sets_only_the_flags_given(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    values = [(plant.serial, "SN-1")]
    updated = await replaced(
        service, tenant.live, meter.id, None, values, DeviceFlags(allow_write=False)
    )
    assert (updated.allow_read, updated.allow_write, updated.allow_renew) == (True, False, True)
    updated = await replaced(
        service,
        tenant.live,
        meter.id,
        None,
        values,
        DeviceFlags(allow_read=False, allow_renew=False),
    )
    assert (updated.allow_read, updated.allow_write, updated.allow_renew) == (False, False, False)
    updated = await replaced(service, tenant.live, meter.id, None, values, DeviceFlags())
    assert (updated.allow_read, updated.allow_write, updated.allow_renew) == (False, False, False)
    updated = await replaced(
        service, tenant.live, meter.id, None, values, DeviceFlags(allow_write=True)
    )
    assert (updated.allow_read, updated.allow_write, updated.allow_renew) == (False, True, False)
    assert await service.get(tenant.live, meter.id) == updated


async def test_replace_by_the_device_itself_records_last_seen(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device, clock: StepClock
) -> None:
    # seen_at= is gone: the device itself calling (its Caller) writes last_seen = now
    seen = LATER + 555
    clock.value, clock.step = seen, 0
    updated = await replaced(service, device_caller(meter), meter.id, None, [(plant.serial, "x")])
    assert updated.last_seen == seen
    assert (await service.get(tenant.live, meter.id)).last_seen == seen


async def test_replace_refuses_an_unknown_flag(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    # DeviceFlags has the three flags only: any other is refused when the flags are made
    with pytest.raises(TypeError, match="Unexpected keyword argument 'status'"):
        flags = DeviceFlags(**{"status": True})
        await replaced(service, tenant.live, meter.id, None, [(plant.serial, "x")], flags)
    assert await service.get(tenant.live, meter.id) == meter


@pytest.mark.parametrize("case", BAD_VALUES, ids=[case.name for case in BAD_VALUES])
async def test_bad_values_on_replace_change_nothing(
    service: DeviceService,
    tenant: Tenant,
    plant: Setup,
    meter: Device,
    foreign_field: bytes,
    case: BadValues,
) -> None:
    before = await values_of(service, tenant.live, meter)
    with pytest.raises(InvalidInput) as caught:
        await replaced(
            service,
            tenant.live,
            meter.id,
            "renamed",
            case.values(plant, foreign_field),
            DeviceFlags(allow_read=False),
        )
    for word in case.words:
        assert word in caught.value.message, caught.value.message
    assert await service.get(tenant.live, meter.id) == meter
    assert await values_of(service, tenant.live, meter) == before


@pytest.mark.parametrize("identifier", ["", "   ", "x" * 256, "a\nb"])
async def test_bad_identifier_on_replace_changes_nothing(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device, identifier: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await replaced(service, tenant.live, meter.id, identifier, [(plant.serial, "new")])
    assert "device_identifier" in caught.value.message
    assert await service.get(tenant.live, meter.id) == meter
    assert await values_of(service, tenant.live, meter) == {
        plant.serial: "SN-1",
        plant.colour: "red",
    }


async def test_taken_identifier_on_replace_changes_nothing(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    await new_device(service, tenant.live, plant, "taken")
    with pytest.raises(Conflict) as caught:
        await replaced(
            service,
            tenant.live,
            meter.id,
            "taken",
            [(plant.serial, "changed")],
            DeviceFlags(allow_renew=False),
        )
    assert caught.value.code == "duplicate_device_identifier"
    assert "identifier taken already exists" in caught.value.message  # the new name
    assert await service.get(tenant.live, meter.id) == meter
    assert await values_of(service, tenant.live, meter) == {
        plant.serial: "SN-1",
        plant.colour: "red",
    }


async def test_replace_of_unknown_foreign_other_mode_or_deleted_device_is_not_found(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant, plant: Setup, meter: Device
) -> None:
    values = [(plant.serial, "x")]
    for caller, device_id in (
        (tenant.live, new_id()),
        (other_tenant.live, meter.id),
        (tenant.test, meter.id),
    ):
        with pytest.raises(NotFound):
            await replaced(service, caller, device_id, "hijack", values)
    assert await service.get(tenant.live, meter.id) == meter
    await service.delete(tenant.live, meter.id)
    with pytest.raises(NotFound):
        await replaced(service, tenant.live, meter.id, "back", values)


async def test_replace_on_a_device_made_through_dialect_f(
    service: DeviceService, tenant: Tenant
) -> None:
    device = await service.create(tenant.live, "ref-1")
    updated = await replaced(service, tenant.live, device.id, None, [])
    assert updated.reference_id == "ref-1"
    assert updated.device_identifier is None
    named = await replaced(service, tenant.live, device.id, "now named", [])
    assert named.device_identifier == "now named"
    assert named.reference_id == "ref-1"


# --- set_status ---------------------------------------------------------------------------


async def test_disable_then_enable(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    disabled = await service.set_status(tenant.live, meter.id, DeviceStatus.DISABLED)
    assert disabled.status is DeviceStatus.DISABLED
    assert disabled.version == meter.version + 1
    assert (await service.get(tenant.live, meter.id)).status is DeviceStatus.DISABLED
    # A disabled device is still listed, with its values.
    assert [d.id for d in await everything(service, tenant.live)] == [meter.id]
    assert await values_of(service, tenant.live, disabled) == {
        plant.serial: "SN-1",
        plant.colour: "red",
    }
    enabled = await service.set_status(tenant.live, meter.id, DeviceStatus.ACTIVE)
    assert enabled.status is DeviceStatus.ACTIVE
    assert enabled.version == meter.version + 2
    assert (await service.get(tenant.live, meter.id)).status is DeviceStatus.ACTIVE


async def test_set_status_cannot_delete_or_revive(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant, meter: Device
) -> None:
    with pytest.raises(ValueError):
        await service.set_status(tenant.live, meter.id, DeviceStatus.DELETED)
    assert await service.get(tenant.live, meter.id) == meter
    with pytest.raises(NotFound):
        await service.set_status(other_tenant.live, meter.id, DeviceStatus.DISABLED)
    with pytest.raises(NotFound):
        await service.set_status(tenant.live, new_id(), DeviceStatus.DISABLED)
    assert await service.get(tenant.live, meter.id) == meter
    await service.delete(tenant.live, meter.id)
    with pytest.raises(NotFound):
        await service.set_status(tenant.live, meter.id, DeviceStatus.ACTIVE)
    with pytest.raises(NotFound):
        await service.get(tenant.live, meter.id)


# --- query --------------------------------------------------------------------------------


async def test_query_is_oldest_first_with_limit_offset_and_total(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    made = [await new_device(service, tenant.live, plant, f"d{i}") for i in range(7)]
    page, total = await service.query(tenant.live, EVERYTHING, limit=3, offset=0)
    assert total == 7
    assert page == made[:3]
    page, total = await service.query(tenant.live, EVERYTHING, limit=3, offset=3)
    assert (page, total) == (made[3:6], 7)
    page, total = await service.query(tenant.live, EVERYTHING, limit=3, offset=6)
    assert (page, total) == (made[6:], 7)
    page, total = await service.query(tenant.live, EVERYTHING, limit=3, offset=50)
    assert (page, total) == ([], 7)


async def test_query_leaves_out_deleted_other_mode_and_other_accounts(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant, plant: Setup
) -> None:
    kept = await new_device(service, tenant.live, plant, "kept")
    gone = await new_device(service, tenant.live, plant, "gone")
    await service.delete(tenant.live, gone.id)
    in_test = await new_device(service, tenant.test, plant, "test")
    theirs = await service.create_in_profile(other_tenant.live, "theirs", None, None, [])
    assert await everything(service, tenant.live) == [kept]
    assert await everything(service, tenant.test) == [in_test]
    assert await everything(service, other_tenant.live) == [theirs]


async def test_query_includes_devices_made_through_dialect_f(
    service: DeviceService, tenant: Tenant
) -> None:
    from_f = await service.create(tenant.live, "ref")
    found = await everything(service, tenant.live)
    assert found == [from_f]
    (view,) = await service.views(tenant.live, found)
    assert view.profile.profile == tenant.profile
    assert view.values == {}


async def test_query_filters(
    service: DeviceService, tenant: Tenant, plant: Setup, later: StepClock
) -> None:
    other = await make_setup(service, tenant.live, "Other")
    a = await new_device(service, tenant.live, plant, "alpha")
    b = await new_device(service, tenant.live, plant, "beta")
    c = await new_device(service, tenant.live, other, "alpha")
    d = await service.create_in_profile(tenant.live, "delta", None, None, [])
    # b is updated last, so its updated_at is the latest of all.
    b = await replaced(service, tenant.live, b.id, None, [(plant.serial, "changed")])

    async def found(**where: object) -> list[Device]:
        devices, total = await service.query(
            tenant.live,
            DeviceFilter(**where),  # type: ignore[arg-type]
            limit=100,
            offset=0,
        )
        assert total == len(devices)
        return devices

    assert await found(device_identifier="alpha") == [a, c]
    assert await found(device_identifier="Alpha") == []
    assert await found(device_identifier="alpha", division_id=other.division_id) == [c]
    assert await found(division_id=plant.division_id) == [a, b]
    assert await found(division_id=tenant.profile.division_id) == [d]
    assert await found(profile_id=other.profile_id) == [c]
    assert await found(profile_id=new_id()) == []
    assert await found(created_from=c.created_at) == [c, d]
    assert await found(created_to=b.created_at) == [a, b]
    assert await found(created_from=b.created_at, created_to=c.created_at) == [b, c]
    assert await found(updated_from=b.updated_at) == [b]
    assert await found(updated_to=a.updated_at) == [a]
    assert await found(updated_from=c.updated_at, updated_to=d.updated_at) == [c, d]
    assert await found(created_from=d.created_at + 1) == []


@pytest.mark.parametrize(
    ("limit", "offset", "word"), [(0, 0, "limit"), (1001, 0, "limit"), (1, -1, "offset")]
)
async def test_query_refuses_bad_limit_and_offset(
    service: DeviceService, tenant: Tenant, limit: int, offset: int, word: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.query(tenant.live, EVERYTHING, limit=limit, offset=offset)
    assert word in caught.value.message


# --- views --------------------------------------------------------------------------------


async def test_views_show_each_devices_profile_division_and_values(
    service: DeviceService, tenant: Tenant, plant: Setup
) -> None:
    other = await make_setup(service, tenant.live, "Other")
    one = await new_device(service, tenant.live, plant, "one", serial="1")
    two = await service.create_in_profile(
        tenant.live, "two", None, other.profile_id, [(other.serial, "2"), (other.colour, "blue")]
    )
    bare = await service.create_in_profile(tenant.live, "bare", None, None, [])
    views = await service.views(tenant.live, [two, bare, one])
    assert [v.device for v in views] == [two, bare, one]
    assert [v.profile.profile.id for v in views] == [
        other.profile_id,
        tenant.profile.id,
        plant.profile_id,
    ]
    assert views[0].profile.division.name == "Other"
    assert [f.name for f in views[0].profile.fields] == ["serial", "colour"]
    assert views[0].values == {other.serial: "2", other.colour: "blue"}
    assert views[1].values == {}
    assert views[2].values == {plant.serial: "1"}
    assert await service.views(tenant.live, []) == []


# --- text PostgreSQL cannot hold (NUL) is refused on both stores, never a driver error ----


async def test_nul_in_a_value_is_refused_on_create_and_replace(
    service: DeviceService, tenant: Tenant, plant: Setup, meter: Device
) -> None:
    for bad in ([(plant.serial, "a\x00b")], [(plant.serial, "ok"), (plant.colour, "\x00")]):
        with pytest.raises(InvalidInput) as caught:
            await service.create_in_profile(
                tenant.live, "nul", plant.division_id, plant.profile_id, bad
            )
        assert "NUL" in caught.value.message
        with pytest.raises(InvalidInput):
            await replaced(service, tenant.live, meter.id, None, bad)
    assert await everything(service, tenant.live) == [meter]
    assert await values_of(service, tenant.live, meter) == {
        plant.serial: "SN-1",
        plant.colour: "red",
    }
    # Other control characters are ordinary text in a value.
    kept = await replaced(
        service, tenant.live, meter.id, None, [(plant.serial, "line 1\nline 2\t!")]
    )
    assert await values_of(service, tenant.live, kept) == {plant.serial: "line 1\nline 2\t!"}


@pytest.mark.parametrize("text", ["a\x00b", "line\nbreak"])
async def test_filters_with_control_characters_are_refused(
    service: DeviceService, tenant: Tenant, text: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.query(tenant.live, DeviceFilter(device_identifier=text), limit=10, offset=0)
    assert "device_identifier" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        await service.list_page(tenant.live, reference_id=text)
    assert "reference_id" in caught.value.message
