"""Bulk import and export of devices as JSON lines (`devreg import|export devices`).

One line is one device with what both dialects show of it. Export writes exactly what
import reads, so an export imported into a fresh data directory gives the same devices
(same ids, times, values). Every key of a line is optional on import; the rules are the
dialects' own (`core/devices.py`), applied to each line, and an import is all or nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from devreg.core.clock import datetime_of_us
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import parse_uuid, render_prefixed, render_uuid
from devreg.core.profiles import Profile, ProfileService
from devreg.core.records import Actor, ActorKind, Caller, Device, DeviceStatus, Division
from devreg.core.store import DeviceStore
from devreg.core.text import nfc

CHUNK = 1000  # devices read per page on export, and validated + inserted together on import

Timestamp = Annotated[datetime, Meta(tz=True)]  # RFC 3339 with an offset or `Z`


class NamedRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A division or device profile: by id if it is one of the account's, else by name."""

    id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET


class FieldValueLine(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    value: str


class DeviceLine(msgspec.Struct, forbid_unknown_fields=True):
    """One line of the file: every key optional on import, every key written on export
    (in this order). Unknown keys, wrong types and naive times are refused."""

    id: str | UnsetType = UNSET  # dialect D's rendering of the id
    flatpeak_id: str | UnsetType = UNSET  # dialect F's rendering of the same id
    live_mode: bool = True
    reference_id: str | None = None
    device_identifier: str | None = None
    division: NamedRef | UnsetType = UNSET
    device_profile: NamedRef | UnsetType = UNSET
    status: Literal["ACTIVE", "DISABLED"] = "ACTIVE"
    fields: list[FieldValueLine] = []
    device_api_allow_read: bool | UnsetType = UNSET
    device_api_allow_write: bool | UnsetType = UNSET
    device_api_allow_renew: bool | UnsetType = UNSET
    created: Timestamp | UnsetType = UNSET
    updated: Timestamp | UnsetType = UNSET
    last_seen: Timestamp | None = None


def _describe(ref: NamedRef) -> str:
    return " ".join(
        f"{key} {value!r}" for key, value in (("id", ref.id), ("name", ref.name)) if value
    )


class AccountProfiles:
    """An account's device profiles and divisions, read once: every line of an import or
    export resolves against them in memory, not with a query per line."""

    def __init__(
        self, account_id: bytes, profiles: list[Profile], divisions: list[Division]
    ) -> None:
        self.account_id = account_id
        self.by_id = {p.profile.id: p for p in profiles}
        self._by_name = {p.profile.name: p for p in profiles}
        self._divisions = {d.id: d for d in divisions}
        self.default = next(p for p in profiles if p.profile.is_default)
        self.field_ids = {p.profile.id: {f.name: f.id for f in p.fields} for p in profiles}
        # (profile ref, division ref) -> the profile, or why not: most files name few.
        self._resolved: dict[tuple[object, ...], Profile | str] = {}

    def resolve(self, profile: NamedRef | UnsetType, division: NamedRef | UnsetType) -> Profile:
        """The line's profile: by `device_profile.id` if it is one of the account's, else
        by its name, else (no device_profile at all) the default; a division named as
        well must be that profile's. Raises InvalidInput."""
        key = (
            None if isinstance(profile, UnsetType) else (profile.id, profile.name),
            None if isinstance(division, UnsetType) else (division.id, division.name),
        )
        found = self._resolved.get(key)
        if found is None:
            try:
                found = self._resolve(profile, division)
            except InvalidInput as exc:
                found = exc.message
            if len(self._resolved) < 10_000:  # bounded: a file of typos cannot grow it
                self._resolved[key] = found
        if isinstance(found, str):
            # A new exception each time: raising one instance again grows its traceback.
            raise InvalidInput(found)
        return found

    def _resolve(self, ref: NamedRef | UnsetType, division: NamedRef | UnsetType) -> Profile:
        profile: Profile | None = self.default
        if not isinstance(ref, UnsetType) and (ref.id or ref.name):
            profile = None
            if not isinstance(ref.id, UnsetType):
                profile_id = parse_uuid(ref.id)
                if profile_id is None:
                    raise InvalidInput("device_profile.id is not a UUID")
                profile = self.by_id.get(profile_id)
            if profile is None and not isinstance(ref.name, UnsetType):
                profile = self._by_name.get(nfc(ref.name.strip()))  # stored stripped, NFC
            if profile is None:
                raise InvalidInput(
                    f"device_profile ({_describe(ref)}) is not a device profile of this account"
                )
        assert profile is not None
        if not isinstance(division, UnsetType):
            self._check_division(profile, division)
        return profile

    def _check_division(self, profile: Profile, ref: NamedRef) -> None:
        own = profile.division
        if not isinstance(ref.id, UnsetType):
            division_id = parse_uuid(ref.id)
            if division_id is None:
                raise InvalidInput("division.id is not a UUID")
            if division_id == own.id:
                return
            if division_id in self._divisions or isinstance(ref.name, UnsetType):
                # another division of ours, or one unknown here and not named either
                raise InvalidInput(
                    f"division ({_describe(ref)}) is not the division of device profile"
                    f" {profile.profile.name!r} ({own.name!r})"
                )
        if not isinstance(ref.name, UnsetType) and nfc(ref.name.strip()) != own.name:
            raise InvalidInput(
                f"division {ref.name!r} is not the division of device profile"
                f" {profile.profile.name!r} ({own.name!r})"
            )


async def load_account(store: DeviceStore, account_id: bytes) -> AccountProfiles:
    if await store.default_profile(account_id) is None:
        raise NotFound(f"no account {render_prefixed('acc', account_id)} in this database")
    # Profiles and divisions are the account's, shared by both modes.
    caller = Caller(
        account_id=account_id,
        live_mode=True,
        credential_id="bulk",
        actor=Actor(ActorKind.SYSTEM, "bulk"),
        request_id="",
    )  # a reader: it changes nothing
    service = ProfileService(store)
    return AccountProfiles(
        account_id, await service.profiles(caller), await service.divisions(caller)
    )


# --- export


def profile_refs(profile: Profile) -> tuple[NamedRef, NamedRef]:
    """(division, device_profile) of a line, as both are named in it."""
    division, p = profile.division, profile.profile
    return (
        NamedRef(id=render_uuid(division.id), name=division.name),
        NamedRef(id=render_uuid(p.id), name=p.name),
    )


def render_line(
    device: Device,
    profile: Profile,
    values: dict[bytes, str],
    refs: tuple[NamedRef, NamedRef] | None = None,
) -> DeviceLine:
    """`refs`: profile_refs(profile), when the caller renders many devices of it."""
    division, device_profile = refs or profile_refs(profile)
    created = datetime_of_us(device.created_at)
    return DeviceLine(
        id=render_uuid(device.id),
        flatpeak_id=render_prefixed("dev", device.id),
        live_mode=device.live_mode,
        reference_id=device.reference_id,
        device_identifier=device.device_identifier,
        division=division,
        device_profile=device_profile,
        status="DISABLED" if device.status is DeviceStatus.DISABLED else "ACTIVE",
        fields=[FieldValueLine(f.name, values[f.id]) for f in profile.fields if f.id in values],
        device_api_allow_read=device.allow_read,
        device_api_allow_write=device.allow_write,
        device_api_allow_renew=device.allow_renew,
        # Microseconds kept (RFC 3339 allows the fraction): a round trip changes nothing,
        # not even the order of devices made in the same second.
        created=created,
        updated=created
        if device.updated_at == device.created_at
        else datetime_of_us(device.updated_at),
        last_seen=None if device.last_seen is None else datetime_of_us(device.last_seen),
    )


Item = tuple[Device, dict[bytes, str]]  # a device and its values by field id


async def _oldest_first(
    store: DeviceStore, account_id: bytes, live_mode: bool, chunk: int
) -> AsyncIterator[Item]:
    """One mode's devices along the listing index, a keyset page of `chunk` at a time."""
    after: tuple[int, bytes] | None = None
    while True:
        devices = await store.devices_oldest_first(account_id, live_mode, after=after, limit=chunk)
        values = await store.field_values([device.id for device in devices])
        for device in devices:
            yield device, values.get(device.id, {})
        if len(devices) < chunk:
            return
        after = (devices[-1].created_at, devices[-1].id)


async def _merged(live: AsyncIterator[Item], test: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """Both modes as one stream, oldest first: the listing index is per mode, so each mode
    is read in order along it and the two are merged here."""
    x, y = await anext(live, None), await anext(test, None)
    while x is not None and y is not None:
        if (x[0].created_at, x[0].id) <= (y[0].created_at, y[0].id):
            yield x
            x = await anext(live, None)
        else:
            yield y
            y = await anext(test, None)
    for first, rest in ((x, live), (y, test)):
        if first is not None:
            yield first
            async for item in rest:
                yield item


async def export_devices(
    store: DeviceStore, account_id: bytes, *, chunk: int = CHUNK
) -> AsyncIterator[bytes]:
    """The account's live and test devices (not deleted ones), oldest first, as JSON lines
    in blocks of `chunk` devices, read in keyset pages: memory stays flat."""
    account = await load_account(store, account_id)
    encoder = msgspec.json.Encoder()
    devices = _merged(
        _oldest_first(store, account_id, True, chunk),
        _oldest_first(store, account_id, False, chunk),
    )
    refs = {profile_id: profile_refs(p) for profile_id, p in account.by_id.items()}
    out = bytearray()
    count = 0
    async for device, values in devices:
        profile = account.by_id.get(device.profile_id)
        if profile is None:  # made while the export runs: read the profiles again
            account = await load_account(store, account_id)
            profile = account.by_id[device.profile_id]
            refs[profile.profile.id] = profile_refs(profile)
        line = render_line(device, profile, values, refs[profile.profile.id])
        encoder.encode_into(line, out, -1)
        out += b"\n"
        count += 1
        if count % chunk == 0:
            yield bytes(out)
            out.clear()
    if out:
        yield bytes(out)
