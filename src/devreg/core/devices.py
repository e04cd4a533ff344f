"""Device rules shared by both dialects: identity, uniqueness, listing order, deletion."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

import msgspec

from devreg.changelog.entries import Action
from devreg.core import reach
from devreg.core.access import DeviceFlags, check_own_flags, own_record
from devreg.core.clock import now_us
from devreg.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from devreg.core.ids import new_id, render_uuid
from devreg.core.paging import check_page
from devreg.core.profiles import Profile, ProfileService
from devreg.core.quotas import DEFAULT_QUOTAS, Quotas, check_devices
from devreg.core.records import Caller, Device, DeviceStatus, ProfileField
from devreg.core.store import (
    DeviceChange,
    DeviceFilter,
    DeviceStore,
    DuplicateValue,
    MissingReference,
)
from devreg.core.text import check_text

MAX_REFERENCE_ID = 255
MAX_PAGE = 100
DEFAULT_PAGE = 30
DUPLICATE_REFERENCE = "Reference ID already exists"
FIELD_REMOVED = "a field of the device profile was removed meanwhile: read it again and retry"
MAX_IDENTIFIER = 255
MAX_FIELD_VALUE = 1024
# A filtered list's total is counted this far past the page's offset, no further: the
# count costs what reading that many index entries does, not what the account holds. The
# unfiltered total comes from the device counter and is always exact.
TOTAL_COUNT_BOUND = 10_000
# Why a deleted device's certificates are revoked (RFC 5280), at the delete and again at a
# restore (for any issued while the delete committed)
DELETED_REASON = "cessationOfOperation"
# DigiCert's create page, word for word
DUPLICATE_IDENTIFIER = "Device with division {division} and identifier {identifier} already exists"
NOT_DELETED = "Device with id {id} is not deleted: only a deleted device can be restored"


class DevicePage(msgspec.Struct, frozen=True):
    devices: list[Device]
    has_more: bool


class QueryPage(msgspec.Struct, frozen=True):
    """A page of dialect D's list. `total` is exact when `total_exact`; otherwise there are
    at least `total` matching devices (offset + TOTAL_COUNT_BOUND), so a client paging
    until `offset >= total` asks again and gets a further bound."""

    ids: list[bytes]  # the page's devices, in order: fetch them with devices_by_ids
    total: int
    total_exact: bool


class DeviceView(msgspec.Struct, frozen=True):
    """A device with what dialect D shows beside it: its division, profile and values."""

    device: Device
    profile: Profile
    values: dict[bytes, str]


def check_device_identifier(value: str) -> str:
    """1-255 characters under the text rule (`core/text.py`), in NFC."""
    identifier = check_text(value, "device_identifier", MAX_IDENTIFIER)
    if not identifier:
        raise InvalidInput("device_identifier must not be empty", "device_identifier")
    return identifier


class FieldLabel(msgspec.Struct, frozen=True):
    """The name and mandatory flag a client sent beside a value (as a GET showed them)."""

    field_id: bytes
    name: str | None
    mandatory: bool | None


def check_field_labels(profile: Profile, labels: list[FieldLabel]) -> None:
    """What a client sends back beside a value must still be true of the profile's field:
    a field is renamed or made mandatory in its profile, never through a device."""
    by_id: dict[bytes, ProfileField] = {field.id: field for field in profile.fields}
    for index, label in enumerate(labels):
        field = by_id.get(label.field_id)
        if field is None:
            continue  # check_field_values names it
        if label.name is not None and unicodedata.normalize("NFC", label.name) != field.name:
            raise InvalidInput(
                f"fields[{index}].name is {label.name[:64]!r} but the field is {field.name!r}:"
                " a field is renamed in its device profile",
                "fields",
            )
        if label.mandatory is not None and label.mandatory != field.mandatory:
            raise InvalidInput(
                f"fields[{index}].mandatory is {str(label.mandatory).lower()} but field"
                f" {field.name!r} is {'' if field.mandatory else 'not '}mandatory in its"
                " device profile",
                "fields",
            )


def check_field_values(profile: Profile, given: list[tuple[bytes, str]]) -> dict[bytes, str]:
    """The values to store for a device of `profile`: every id must be one of the
    profile's fields (once), every value at most 1024 characters, and every mandatory
    field must have a non-empty value. Names the first problem found."""
    by_id: dict[bytes, ProfileField] = {field.id: field for field in profile.fields}
    values: dict[bytes, str] = {}
    for index, (field_id, value) in enumerate(given):
        field = by_id.get(field_id)
        if field is None:
            raise InvalidInput(
                f"fields[{index}].id is not a field of device profile {profile.profile.name!r}",
                "fields",
            )
        if field_id in values:
            raise InvalidInput(f"field {field.name!r} is given more than once", "fields")
        if len(value) > MAX_FIELD_VALUE:
            raise InvalidInput(
                f"value of field {field.name!r} is longer than {MAX_FIELD_VALUE} characters",
                "fields",
            )
        if "\x00" in value:  # PostgreSQL text cannot hold it: refused on every store
            raise InvalidInput(
                f"value of field {field.name!r} must not contain NUL characters", "fields"
            )
        values[field_id] = value
    for field in profile.fields:
        if field.mandatory and not values.get(field.id):
            raise InvalidInput(f"mandatory field {field.name!r} has no value", "fields")
    return values


def check_reference_id(value: str) -> str | None:
    """An empty reference means "none" (dialect F has no null for it); otherwise 1-255
    characters under the text rule (`core/text.py`), in NFC."""
    return check_text(value, "reference_id", MAX_REFERENCE_ID) or None


def _restore_clash(device: Device, field: str) -> str:
    if field == "device_identifier":
        return (
            f"Cannot restore: device_identifier {device.device_identifier!r} is now used by"
            " another device of this division"
        )
    if field == "reference_id":
        return f"Cannot restore: reference_id {device.reference_id!r} is now used by another device"
    return f"Cannot restore: {field} is now used by another device"


def _conflict(exc: DuplicateValue, device: Device | None = None) -> Conflict:
    """`device` is the one being written, when its identifier could be the clash."""
    if exc.field == "reference_id":
        return Conflict(DUPLICATE_REFERENCE, "duplicate_reference")
    if exc.field == "device_identifier" and device is not None:
        return Conflict(
            DUPLICATE_IDENTIFIER.format(
                division=render_uuid(device.division_id), identifier=device.device_identifier
            ),
            "duplicate_device_identifier",
        )
    return Conflict(f"{exc.field} already exists", f"duplicate_{exc.field}")


class DeviceService:
    """The device use cases. Every rule about a device's lifecycle lives here, once."""

    def __init__(
        self, store: DeviceStore, clock: Callable[[], int] = now_us, quotas: Quotas = DEFAULT_QUOTAS
    ) -> None:
        self.store = store
        self.clock = clock
        self.quotas = quotas
        self.profiles = ProfileService(store, clock, quotas)

    async def check_room(self, caller: Caller) -> None:
        """The device quota, read from the counter (one indexed read of at most 16 rows).
        Checked before the insert, so concurrent creates may pass it together: an account
        can exceed its quota by at most the creates in flight at that moment."""
        check_devices(
            self.quotas, await self.store.count_devices(caller.account_id, caller.live_mode)
        )

    async def create(self, caller: Caller, reference_id: str | None) -> Device:
        reference = check_reference_id(reference_id) if reference_id is not None else None
        profile = await self.store.default_profile(caller.account_id)
        if profile is None:  # every account is created with one; a missing one is corruption
            raise RuntimeError("account has no default device profile")
        reach.check_default_division(caller, profile.division_id)
        await self.check_room(caller)
        now = self.clock()
        device = Device(
            id=new_id(),
            account_id=caller.account_id,
            live_mode=caller.live_mode,
            reference_id=reference,
            device_identifier=None,
            division_id=profile.division_id,
            profile_id=profile.id,
            status=DeviceStatus.ACTIVE,
            allow_read=profile.allow_read,
            allow_write=profile.allow_write,
            allow_renew=profile.allow_renew,
            last_seen=None,
            created_at=now,
            updated_at=now,
            version=1,
        )
        try:
            await self.store.insert_device(device, {}, caller.origin)
        except DuplicateValue as exc:
            raise _conflict(exc) from exc
        return device

    async def get(self, caller: Caller, device_id: bytes) -> Device:
        return await reach.reachable_device(self.store, caller, device_id)

    async def list_page(
        self,
        caller: Caller,
        *,
        limit: int = DEFAULT_PAGE,
        reference_id: str | None = None,
        starting_after: bytes | None = None,
        ending_before: bytes | None = None,
    ) -> DevicePage:
        """Newest first. `starting_after` pages towards older devices, `ending_before`
        towards newer ones; a cursor may name a device deleted since."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", "limit")
        if reference_id is not None:
            # Compared as stored (NFC); a value no reference may have is refused, not
            # looked up (PostgreSQL cannot even compare a NUL).
            reference_id = check_text(reference_id, "reference_id", None) or None
        if starting_after is not None and ending_before is not None:
            raise InvalidInput(
                "starting_after and ending_before cannot be used together", "starting_after"
            )
        cursor_id, field = (
            (starting_after, "starting_after")
            if starting_after is not None
            else (ending_before, "ending_before")
        )
        cursor = None
        if cursor_id is not None:
            try:
                anchor = await reach.reachable_device(
                    self.store, caller, cursor_id, include_deleted=True
                )
            except NotFound:
                raise InvalidInput(f"{field} names no device of this account", field) from None
            cursor = (anchor.created_at, anchor.id)
        newer = ending_before is not None
        found = await self.store.list_devices(
            caller.account_id,
            caller.live_mode,
            limit=limit + 1,
            reference_id=reference_id,
            cursor=cursor,
            direction="newer" if newer else "older",
            division_ids=caller.divisions,
        )
        has_more = len(found) > limit
        if has_more:
            # The extra row is the one farthest from the cursor: the newest when paging newer.
            found = found[1:] if newer else found[:limit]
        return DevicePage(devices=found, has_more=has_more)

    async def update(
        self, caller: Caller, device_id: bytes, reference_id: str | msgspec.UnsetType | None
    ) -> Device:
        """Dialect F's partial update: only what is sent is written (its one field)."""
        if reference_id is msgspec.UNSET:
            return await self.get(caller, device_id)
        change = DeviceChange(
            reference_id=check_reference_id(reference_id) if reference_id is not None else None
        )
        await reach.check_device(self.store, caller, device_id)
        try:
            device = await self.store.update_device(
                caller.account_id, caller.live_mode, device_id, change, self.clock(),
                caller.origin, Action.DEVICE_UPDATE,
            )  # fmt: skip
        except DuplicateValue as exc:
            raise _conflict(exc) from exc
        if device is None:
            raise NotFound("No such device")
        return device

    async def delete(self, caller: Caller, device_id: bytes) -> Device:
        """Soft delete (an archive): the row stays (certificates point at it) but the
        device is gone from every read but `restore`, it no longer counts toward the
        quota, and its reference_id and device_identifier are free again. Its
        certificates are revoked (cessationOfOperation), so the CRL says so too. Returns
        the device as archived (status DELETED)."""
        await reach.check_device(self.store, caller, device_id)
        deleted = await self.store.update_device(
            caller.account_id, caller.live_mode, device_id,
            DeviceChange(status=DeviceStatus.DELETED), self.clock(), caller.origin,
            Action.DEVICE_DELETE, revoke_reason=DELETED_REASON,
        )  # fmt: skip
        if deleted is None:
            raise NotFound("No such device")
        return deleted

    async def restore(self, caller: Caller, device_id: bytes) -> Device:
        """A deleted device back to ACTIVE, if its device_identifier and reference_id are
        still free (else InvalidInput naming the clash) and the quota has room (it counts
        again). Its certificates stay revoked: a revocation is never undone."""
        device = await reach.reachable_device(self.store, caller, device_id, include_deleted=True)
        if device.status is not DeviceStatus.DELETED:
            raise InvalidInput(NOT_DELETED.format(id=render_uuid(device_id)), "id")
        await self.check_room(caller)
        try:
            restored = await self.store.restore_device(
                caller.account_id, caller.live_mode, device_id, self.clock(), DELETED_REASON,
                caller.origin,
            )  # fmt: skip
        except DuplicateValue as exc:
            raise InvalidInput(_restore_clash(device, exc.field), exc.field) from exc
        if restored is None:  # restored by a concurrent call since it was read
            raise InvalidInput(NOT_DELETED.format(id=render_uuid(device_id)), "id")
        return restored

    # --- dialect D: devices in a division and profile, with field values

    async def create_in_profile(
        self,
        caller: Caller,
        device_identifier: str,
        division_id: bytes | None,
        profile_id: bytes | None,
        given: list[tuple[bytes, str]],
    ) -> Device:
        """A device of `profile_id` (the default profile when None) in its division; a
        division named as well must be the profile's."""
        if profile_id is None:
            default = await self.store.default_profile(caller.account_id)
            if default is None:
                raise RuntimeError("account has no default device profile")
            reach.check_default_division(caller, default.division_id)
            profile_id = default.id
        profile = await self.profiles.profile(caller, profile_id)
        if division_id is not None and division_id != profile.division.id:
            await self.profiles.division(caller, division_id)  # NotFound if it is not ours
            raise InvalidInput(
                f"device profile {profile.profile.name!r} belongs to another division",
                "division_id",
            )
        identifier = check_device_identifier(device_identifier)
        values = check_field_values(profile, given)
        await self.check_room(caller)
        now = self.clock()
        flags = profile.profile
        device = Device(
            id=new_id(), account_id=caller.account_id, live_mode=caller.live_mode,
            reference_id=None, device_identifier=identifier, division_id=profile.division.id,
            profile_id=flags.id, status=DeviceStatus.ACTIVE, allow_read=flags.allow_read,
            allow_write=flags.allow_write, allow_renew=flags.allow_renew, last_seen=None,
            created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        try:
            await self.store.insert_device(device, values, caller.origin)
        except DuplicateValue as exc:
            raise _conflict(exc, device) from exc
        except MissingReference:
            raise InvalidInput(FIELD_REMOVED, "fields") from None
        return device

    async def replace(
        self,
        caller: Caller,
        device_id: bytes,
        device_identifier: str | None,
        given: list[tuple[bytes, str]],
        flags: DeviceFlags,
        labels: list[FieldLabel] | None = None,
    ) -> DeviceView:
        """Seed 003's update: the identifier changes only when given, the field values
        become exactly `given` (omitted ones are deleted), and `flags` may set the
        device_api_allow_* columns (a back office only: the device itself may send its own
        only unchanged, `core/access.py`). `labels` are the names and flags sent beside the
        values, which must agree with the profile. Returns the device as written, with its
        profile and values."""
        if caller.is_device:
            device = own_record(caller, device_id, "write")
            check_own_flags(device, flags)
            writes = DeviceFlags()  # the flags sent are the flags it has
        else:
            device = await self.get(caller, device_id)
            writes = flags
        profile = await self.profiles.profile(caller, device.profile_id)
        values = check_field_values(profile, given)
        check_field_labels(profile, labels or [])
        # "" is how dialect D shows a device without an identifier (made in dialect F):
        # sent back, it changes nothing; for any other device it is refused as empty
        unchanged = device_identifier == "" and device.device_identifier is None
        identifier: str | msgspec.UnsetType = msgspec.UNSET
        if device_identifier is not None and not unchanged:
            identifier = check_device_identifier(device_identifier)
        now = self.clock()
        change = DeviceChange(
            device_identifier=identifier, allow_read=writes.allow_read,
            allow_write=writes.allow_write, allow_renew=writes.allow_renew, values=values,
            # the device itself: last_seen in the same write, not a second one
            last_seen=now if caller.is_device else msgspec.UNSET,
        )  # fmt: skip
        try:
            updated = await self.store.update_device(
                caller.account_id, caller.live_mode, device_id, change, now, caller.origin,
                Action.DEVICE_UPDATE, writable_only=caller.is_device,
            )  # fmt: skip
        except DuplicateValue as exc:
            # only a new identifier can clash: the device as it would have been named
            renamed = None
            if isinstance(identifier, str):
                renamed = msgspec.structs.replace(device, device_identifier=identifier)
            raise _conflict(exc, renamed) from exc
        except MissingReference:
            raise InvalidInput(FIELD_REMOVED, "fields") from None
        if updated is None:
            if caller.is_device:  # disabled, or allow_write cleared, since access was checked
                raise Forbidden("The device may no longer write its record")
            raise NotFound("No such device")
        # The values are now exactly `values`: nothing needs to be read back.
        return DeviceView(device=updated, profile=profile, values=values)

    async def seen(self, caller: Caller) -> Device:
        """The device itself made an accepted call (a read, a renewal, an EST enrollment):
        its `last_seen` moves. Not a change of its record, so not in the change log."""
        device = caller.device
        if device is None:
            raise ValueError("seen() is for a device's own calls")
        now = self.clock()
        await self.store.touch_last_seen(device.id, now)
        return msgspec.structs.replace(device, last_seen=now)

    async def set_status(self, caller: Caller, device_id: bytes, status: DeviceStatus) -> Device:
        """Enable or disable; a disabled device is refused on the client-auth listener."""
        if status is DeviceStatus.DELETED:
            raise ValueError("use delete()")
        action = Action.DEVICE_ENABLE if status is DeviceStatus.ACTIVE else Action.DEVICE_DISABLE
        await reach.check_device(self.store, caller, device_id)
        updated = await self.store.update_device(
            caller.account_id, caller.live_mode, device_id, DeviceChange(status=status),
            self.clock(), caller.origin, action,
        )  # fmt: skip
        if updated is None:
            raise NotFound("No such device")
        return updated

    async def query(
        self, caller: Caller, where: DeviceFilter, *, limit: int, offset: int
    ) -> tuple[list[Device], int]:
        page = await self.query_page(caller, where, limit=limit, offset=offset)
        return await self.devices_by_ids(caller, page.ids), page.total

    async def devices_by_ids(self, caller: Caller, device_ids: Sequence[bytes]) -> list[Device]:
        """The caller's non-deleted devices among `device_ids` it reaches, in that order."""
        found = await self.store.devices_by_ids(caller.account_id, caller.live_mode, device_ids)
        return [device for device in found if reach.sees_division(caller, device.division_id)]

    async def query_page(
        self, caller: Caller, where: DeviceFilter, *, limit: int, offset: int
    ) -> QueryPage:
        """Dialect D's list: oldest first, `limit` from `offset`, with the total (exact from
        the counter when nothing is filtered, else counted up to TOTAL_COUNT_BOUND past
        the offset)."""
        check_page(limit, offset)
        if where.device_identifier is not None:  # compared as stored (NFC), like list_page
            where = msgspec.structs.replace(
                where,
                device_identifier=check_text(where.device_identifier, "device_identifier", None),
            )
        # Set here from the credential, whatever the dialect parsed: never the client's to say.
        where = msgspec.structs.replace(where, division_ids=caller.divisions)
        account, mode = caller.account_id, caller.live_mode
        ids = await self.store.query_device_ids(account, mode, where, limit=limit, offset=offset)
        if where == DeviceFilter():
            total = await self.store.count_devices(account, mode)
            return QueryPage(ids=ids, total=total, total_exact=True)
        bound = offset + TOTAL_COUNT_BOUND
        total = await self.store.count_matching(account, mode, where, at_most=bound)
        return QueryPage(ids=ids, total=total, total_exact=total < bound)

    async def views(
        self,
        caller: Caller,
        devices: Sequence[Device],
        profiles: dict[bytes, Profile] | None = None,
    ) -> list[DeviceView]:
        """The devices with their profiles and values; `profiles` caches the profiles
        across calls (one list answer renders its devices in batches)."""
        profiles = {} if profiles is None else profiles
        for device in devices:
            if device.profile_id not in profiles:
                profiles[device.profile_id] = await self.profiles.profile(caller, device.profile_id)
        values = await self.store.field_values([device.id for device in devices])
        return [
            DeviceView(
                device=device,
                profile=profiles[device.profile_id],
                values=values.get(device.id, {}),
            )
            for device in devices
        ]
