"""Divisions and device profiles: where devices live, which fields they carry, and the
default `device_api_allow_*` flags a new device gets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from devreg.core import reach
from devreg.core.access import DeviceFlags
from devreg.core.accounts import check_name
from devreg.core.clock import now_us
from devreg.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.paging import check_page
from devreg.core.quotas import DEFAULT_QUOTAS, Quotas, check_divisions, check_profiles
from devreg.core.records import Caller, DeviceProfile, Division, ProfileField
from devreg.core.store import DeviceStore, DuplicateValue

MAX_FIELDS = 100


class FieldSpec(msgspec.Struct, frozen=True):
    name: str
    mandatory: bool
    id: bytes | None = None  # an existing field of the profile, when updating it


class ProfileFlags(msgspec.Struct, frozen=True):
    allow_read: bool = True
    allow_write: bool = True
    allow_renew: bool = True


class Profile(msgspec.Struct, frozen=True):
    """A profile with its division and its fields, as the dialects show it."""

    profile: DeviceProfile
    division: Division
    fields: list[ProfileField]


def build_fields(
    profile_id: bytes, specs: list[FieldSpec], existing: list[ProfileField] | None = None
) -> list[ProfileField]:
    """The profile's fields in the order given: names unique, at most MAX_FIELDS, and an
    `id` only where it names one of the `existing` fields (kept, perhaps renamed)."""
    if len(specs) > MAX_FIELDS:
        raise InvalidInput(f"a profile has at most {MAX_FIELDS} fields", "fields")
    known = {field.id for field in existing or []}
    made: list[ProfileField] = []
    names: set[str] = set()
    ids: set[bytes] = set()
    for position, spec in enumerate(specs):
        name = check_name(spec.name, f"fields[{position}].name")
        if name in names:
            raise InvalidInput(f"field name {name!r} is given twice", "fields")
        names.add(name)
        if spec.id is not None and (spec.id not in known or spec.id in ids):
            raise InvalidInput(f"fields[{position}].id is not a field of this profile", "fields")
        field_id = spec.id or new_id()
        ids.add(field_id)
        made.append(
            ProfileField(
                id=field_id,
                profile_id=profile_id,
                name=name,
                mandatory=spec.mandatory,
                position=position,
            )
        )
    return made


NO_DIVISION = "Division does not exist"
NO_PROFILE = "Device profile does not exist"


class ProfileService:
    def __init__(
        self, store: DeviceStore, clock: Callable[[], int] = now_us, quotas: Quotas = DEFAULT_QUOTAS
    ) -> None:
        self.store = store
        self.clock = clock
        self.quotas = quotas

    async def create_division(self, caller: Caller, name: str) -> Division:
        reach.check_unlimited(caller, "create divisions")  # one outside its own reach
        now = self.clock()
        division = Division(
            id=new_id(), account_id=caller.account_id, name=check_name(name),
            is_default=False, created_at=now, updated_at=now,
        )  # fmt: skip
        check_divisions(self.quotas, await self.store.count_divisions(caller.account_id))
        try:
            await self.store.insert_division(division, caller.origin)
        except DuplicateValue:
            raise Conflict(
                f"a division named {division.name!r} already exists", "duplicate_division_name"
            ) from None
        return division

    async def division(self, caller: Caller, division_id: bytes) -> Division:
        division = await self.store.get_division(caller.account_id, division_id)
        if division is None or not reach.sees_division(caller, division.id):
            raise NotFound(NO_DIVISION)
        return division

    async def divisions(self, caller: Caller) -> list[Division]:
        found = await self.store.list_divisions(caller.account_id)
        return [d for d in found if reach.sees_division(caller, d.id)]

    async def division_page(
        self, caller: Caller, *, limit: int, offset: int
    ) -> tuple[list[Division], int]:
        """Oldest first, and how many the account has (at most its quota: counted). A
        limited key's page is cut from the divisions it reaches (at most the quota's)."""
        check_page(limit, offset)
        if reach.limited(caller):
            reached = await self.divisions(caller)
            return reached[offset : offset + limit], len(reached)
        page = await self.store.list_divisions(caller.account_id, limit=limit, offset=offset)
        return page, await self.store.count_divisions(caller.account_id)

    async def create_profile(
        self,
        caller: Caller,
        name: str,
        division_id: bytes | None,
        fields: list[FieldSpec],
        flags: ProfileFlags,
    ) -> Profile:
        """A new profile in `division_id` (the account's default division when None)."""
        if division_id is None:
            default = await self.store.default_profile(caller.account_id)
            if default is None:
                raise RuntimeError("account has no default device profile")
            reach.check_default_division(caller, default.division_id)
            division_id = default.division_id
        division = await self.division(caller, division_id)
        if len(fields) > MAX_FIELDS:
            raise InvalidInput(f"a profile has at most {MAX_FIELDS} fields", "fields")
        now = self.clock()
        profile = DeviceProfile(
            id=new_id(), account_id=caller.account_id, division_id=division.id,
            name=check_name(name), is_default=False, allow_read=flags.allow_read,
            allow_write=flags.allow_write, allow_renew=flags.allow_renew,
            created_at=now, updated_at=now,
        )  # fmt: skip
        made = build_fields(profile.id, fields)
        check_profiles(self.quotas, await self.store.count_profiles(caller.account_id))
        try:
            await self.store.insert_profile(profile, made, caller.origin)
        except DuplicateValue:
            raise Conflict(
                f"a device profile named {profile.name!r} already exists",
                "duplicate_profile_name",
            ) from None
        return Profile(profile=profile, division=division, fields=made)

    async def update_profile(
        self,
        caller: Caller,
        profile_id: bytes,
        name: str | None,
        fields: list[FieldSpec] | None,
        flags: DeviceFlags,
    ) -> Profile:
        """Rename, change the default flags, or replace the field list. What it does to
        existing devices: flags are defaults for devices created afterwards (each device
        keeps its own); a removed field's values are deleted from every device; a field
        made mandatory is enforced on each device's next update, not retroactively.
        Profiles are shared by live and test devices, so only a live key may change one."""
        current = await self.profile(caller, profile_id)
        if not caller.live_mode:
            raise Forbidden(
                "Device profiles are shared by live and test devices: change them with a live key"
            )
        old = current.profile
        updated = msgspec.structs.replace(
            old,
            name=check_name(name) if name is not None else old.name,
            allow_read=_given(flags.allow_read, old.allow_read),
            allow_write=_given(flags.allow_write, old.allow_write),
            allow_renew=_given(flags.allow_renew, old.allow_renew),
            updated_at=self.clock(),
        )
        made = current.fields if fields is None else build_fields(old.id, fields, current.fields)
        kept = {field.id for field in made}
        removed = [field.id for field in current.fields if field.id not in kept]
        try:
            await self.store.update_profile(updated, made, removed, caller.origin)
        except DuplicateValue:
            raise Conflict(
                f"a device profile named {updated.name!r} already exists",
                "duplicate_profile_name",
            ) from None
        return Profile(profile=updated, division=current.division, fields=made)

    async def profile(self, caller: Caller, profile_id: bytes) -> Profile:
        profile = await self.store.get_profile(caller.account_id, profile_id)
        if profile is None or not reach.sees_division(caller, profile.division_id):
            raise NotFound(NO_PROFILE)
        return (await self.complete([profile]))[0]

    async def profiles(self, caller: Caller) -> list[Profile]:
        return await self.complete(await self._reached_profiles(caller))

    async def _reached_profiles(self, caller: Caller) -> list[DeviceProfile]:
        found = await self.store.list_profiles(caller.account_id)
        return [p for p in found if reach.sees_division(caller, p.division_id)]

    async def profile_page(
        self, caller: Caller, *, limit: int, offset: int
    ) -> tuple[list[DeviceProfile], int]:
        """Oldest first, and how many the account has; `complete` them a batch at a time.
        A limited key's page is cut from the profiles it reaches (at most the quota's)."""
        check_page(limit, offset)
        if reach.limited(caller):
            reached = await self._reached_profiles(caller)
            return reached[offset : offset + limit], len(reached)
        page = await self.store.list_profiles(caller.account_id, limit=limit, offset=offset)
        return page, await self.store.count_profiles(caller.account_id)

    async def complete(self, profiles: Sequence[DeviceProfile]) -> list[Profile]:
        fields = await self.store.profile_fields([p.id for p in profiles])
        divisions = {}
        for profile in profiles:
            if profile.division_id not in divisions:
                division = await self.store.get_division(profile.account_id, profile.division_id)
                if division is None:
                    raise RuntimeError("profile refers to a missing division")
                divisions[profile.division_id] = division
        return [
            Profile(profile=p, division=divisions[p.division_id], fields=fields[p.id])
            for p in profiles
        ]


def _given(sent: bool | msgspec.UnsetType, current: bool) -> bool:
    return current if sent is msgspec.UNSET else sent
