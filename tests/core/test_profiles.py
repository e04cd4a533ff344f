"""ProfileService: divisions and device profiles, over the real store on both backends."""

from __future__ import annotations

import pytest

from devreg.core.accounts import DEFAULT_DIVISION_NAME, DEFAULT_PROFILE_NAME, MAX_NAME
from devreg.core.errors import Conflict, InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.profiles import MAX_FIELDS, FieldSpec, ProfileFlags, ProfileService
from devreg.core.store import DeviceStore
from tests.core.conftest import START, StepClock, Tenant

# After the account's own default division and profile (made at START), so that listings,
# ordered by creation time, have no ties to break.
LATER = START + 1_000_000


@pytest.fixture
def profiles(store: DeviceStore, clock: StepClock) -> ProfileService:
    clock.value = LATER
    return ProfileService(store, clock)


def names(items: list[FieldSpec]) -> list[str]:
    return [item.name for item in items]


# --- divisions ---------------------------------------------------------------------------


async def test_new_account_has_only_the_default_division(
    profiles: ProfileService, tenant: Tenant
) -> None:
    (division,) = await profiles.divisions(tenant.live)
    assert division.name == DEFAULT_DIVISION_NAME
    assert division.is_default is True
    assert division.id == tenant.profile.division_id


async def test_create_division_is_listed_and_found(
    profiles: ProfileService, tenant: Tenant
) -> None:
    made = await profiles.create_division(tenant.live, "  Plant Berlin  ")
    assert made.name == "Plant Berlin"  # surrounding blanks are not part of the name
    assert made.account_id == tenant.account_id
    assert made.is_default is False
    assert made.created_at == made.updated_at == LATER
    assert await profiles.division(tenant.live, made.id) == made
    listed = await profiles.divisions(tenant.live)
    assert [d.name for d in listed] == [DEFAULT_DIVISION_NAME, "Plant Berlin"]
    assert listed[1] == made


async def test_divisions_belong_to_the_account_not_the_mode(
    profiles: ProfileService, tenant: Tenant
) -> None:
    made = await profiles.create_division(tenant.live, "Shared")
    assert await profiles.division(tenant.test, made.id) == made


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("x" * (MAX_NAME + 1), [str(MAX_NAME)]),
        ("line\nbreak", ["control"]),
        ("nul\x00", ["control"]),
        ("del\x7f", ["control"]),
    ],
    ids=["empty", "blank", "too long", "newline", "nul", "delete"],
)
async def test_bad_division_names_are_refused_and_nothing_is_stored(
    profiles: ProfileService, tenant: Tenant, name: str, words: list[str]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await profiles.create_division(tenant.live, name)
    assert "name" in caught.value.message
    for word in words:
        assert word in caught.value.message
    assert len(await profiles.divisions(tenant.live)) == 1


async def test_division_name_of_exactly_the_maximum_is_kept(
    profiles: ProfileService, tenant: Tenant
) -> None:
    made = await profiles.create_division(tenant.live, "é" * MAX_NAME)
    assert (await profiles.division(tenant.live, made.id)).name == "é" * MAX_NAME


async def test_duplicate_division_name_is_a_conflict(
    profiles: ProfileService, tenant: Tenant
) -> None:
    await profiles.create_division(tenant.live, "North")
    with pytest.raises(Conflict) as caught:
        await profiles.create_division(tenant.test, " North ")
    assert caught.value.code == "duplicate_division_name"
    assert "North" in caught.value.message
    with pytest.raises(Conflict):
        await profiles.create_division(tenant.live, DEFAULT_DIVISION_NAME)
    assert [d.name for d in await profiles.divisions(tenant.live)] == ["Default", "North"]


async def test_division_names_are_per_account(
    profiles: ProfileService, tenant: Tenant, other_tenant: Tenant
) -> None:
    await profiles.create_division(tenant.live, "North")
    theirs = await profiles.create_division(other_tenant.live, "North")
    assert theirs.account_id == other_tenant.account_id


async def test_other_accounts_division_is_not_found(
    profiles: ProfileService, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await profiles.create_division(other_tenant.live, "Theirs")
    with pytest.raises(NotFound):
        await profiles.division(tenant.live, theirs.id)
    with pytest.raises(NotFound):
        await profiles.division(tenant.live, new_id())
    assert theirs not in await profiles.divisions(tenant.live)


# --- profiles ----------------------------------------------------------------------------


async def test_new_account_has_the_default_profile(
    profiles: ProfileService, tenant: Tenant
) -> None:
    (profile,) = await profiles.profiles(tenant.live)
    assert profile.profile == tenant.profile
    assert profile.profile.name == DEFAULT_PROFILE_NAME
    assert profile.division.is_default is True
    assert profile.fields == []


async def test_profile_without_division_goes_to_the_default_division(
    profiles: ProfileService, tenant: Tenant
) -> None:
    made = await profiles.create_profile(tenant.live, "Meter", None, [], ProfileFlags())
    assert made.division.id == tenant.profile.division_id
    assert made.profile.division_id == tenant.profile.division_id
    assert made.profile.is_default is False
    assert made.fields == []
    assert await profiles.profile(tenant.live, made.profile.id) == made


async def test_profile_in_a_named_division_keeps_fields_in_order_and_flags(
    profiles: ProfileService, tenant: Tenant
) -> None:
    division = await profiles.create_division(tenant.live, "Plant")
    specs = [
        FieldSpec("zeta", mandatory=True),
        FieldSpec("alpha", mandatory=False),
        FieldSpec("Mid field", mandatory=True),
    ]
    flags = ProfileFlags(allow_read=True, allow_write=False, allow_renew=False)
    made = await profiles.create_profile(tenant.live, "Sensor", division.id, specs, flags)
    assert made.division == division
    assert made.profile.name == "Sensor"
    assert (made.profile.allow_read, made.profile.allow_write, made.profile.allow_renew) == (
        True,
        False,
        False,
    )
    assert [(f.name, f.mandatory) for f in made.fields] == [
        ("zeta", True),
        ("alpha", False),
        ("Mid field", True),
    ]
    assert len({f.id for f in made.fields}) == 3
    assert all(f.profile_id == made.profile.id for f in made.fields)
    again = await profiles.profile(tenant.test, made.profile.id)
    assert again == made
    listed = await profiles.profiles(tenant.live)
    assert [p.profile.name for p in listed] == [DEFAULT_PROFILE_NAME, "Sensor"]
    assert listed[1] == made


async def test_duplicate_field_names_are_refused_and_no_profile_is_stored(
    profiles: ProfileService, tenant: Tenant
) -> None:
    specs = [FieldSpec("serial", True), FieldSpec("colour", False), FieldSpec(" serial", False)]
    with pytest.raises(InvalidInput) as caught:
        await profiles.create_profile(tenant.live, "Twice", None, specs, ProfileFlags())
    assert "serial" in caught.value.message
    assert len(await profiles.profiles(tenant.live)) == 1


async def test_bad_field_name_is_named_by_position(
    profiles: ProfileService, tenant: Tenant
) -> None:
    specs = [FieldSpec("ok", False), FieldSpec("bad\tname", False)]
    with pytest.raises(InvalidInput) as caught:
        await profiles.create_profile(tenant.live, "P", None, specs, ProfileFlags())
    assert "fields[1].name" in caught.value.message
    assert len(await profiles.profiles(tenant.live)) == 1


async def test_a_hundred_fields_are_accepted_but_not_more(
    profiles: ProfileService, tenant: Tenant
) -> None:
    specs = [FieldSpec(f"f{i:03}", i % 2 == 0) for i in range(MAX_FIELDS)]
    made = await profiles.create_profile(tenant.live, "Wide", None, specs, ProfileFlags())
    assert [f.name for f in made.fields] == names(specs)
    assert [f.name for f in (await profiles.profile(tenant.live, made.profile.id)).fields] == (
        names(specs)
    )
    too_many = [*specs, FieldSpec("one more", False)]
    with pytest.raises(InvalidInput) as caught:
        await profiles.create_profile(tenant.live, "Wider", None, too_many, ProfileFlags())
    assert str(MAX_FIELDS) in caught.value.message
    assert [p.profile.name for p in await profiles.profiles(tenant.live)] == ["Default", "Wide"]


async def test_bad_profile_name_is_refused(profiles: ProfileService, tenant: Tenant) -> None:
    with pytest.raises(InvalidInput) as caught:
        await profiles.create_profile(tenant.live, " ", None, [], ProfileFlags())
    assert "name" in caught.value.message
    assert len(await profiles.profiles(tenant.live)) == 1


async def test_duplicate_profile_name_is_a_conflict_and_stores_nothing(
    profiles: ProfileService, tenant: Tenant
) -> None:
    first = await profiles.create_profile(
        tenant.live, "Meter", None, [FieldSpec("a", True)], ProfileFlags()
    )
    division = await profiles.create_division(tenant.live, "Elsewhere")
    with pytest.raises(Conflict) as caught:
        await profiles.create_profile(
            tenant.live, "Meter", division.id, [FieldSpec("b", False)], ProfileFlags()
        )
    assert caught.value.code == "duplicate_profile_name"
    assert "Meter" in caught.value.message
    listed = await profiles.profiles(tenant.live)
    assert [p.profile.id for p in listed] == [tenant.profile.id, first.profile.id]
    assert listed[1].fields == first.fields


async def test_profile_in_unknown_or_foreign_division_is_not_found(
    profiles: ProfileService, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await profiles.create_division(other_tenant.live, "Theirs")
    for division_id in (theirs.id, new_id(), other_tenant.profile.division_id):
        with pytest.raises(NotFound):
            await profiles.create_profile(tenant.live, "P", division_id, [], ProfileFlags())
    assert len(await profiles.profiles(tenant.live)) == 1
    assert len(await profiles.profiles(other_tenant.live)) == 1


async def test_other_accounts_profile_is_not_found(
    profiles: ProfileService, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await profiles.create_profile(other_tenant.live, "Theirs", None, [], ProfileFlags())
    for profile_id in (theirs.profile.id, other_tenant.profile.id, new_id()):
        with pytest.raises(NotFound):
            await profiles.profile(tenant.live, profile_id)
    assert [p.profile.id for p in await profiles.profiles(tenant.live)] == [tenant.profile.id]
