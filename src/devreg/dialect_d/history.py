"""Dialect D's view of the change log: a device's history, the device as of a moment, and
the account's log. A device's records are shown in dialect D's device shape plus what only
dialect F shows (`reference_id`, `live_mode`) and its `version`."""

from __future__ import annotations

from datetime import datetime

import msgspec

from devreg.changelog.entries import Entry
from devreg.changelog.export import ActorOut, EntryOut, actor_of
from devreg.changelog.records import DeviceRecord, ProfileRecord, profile_record
from devreg.changelog.service import ChangeLogService
from devreg.core.clock import datetime_of_us, render_rfc3339
from devreg.core.errors import NotFound
from devreg.core.ids import parse_uuid, render_uuid
from devreg.core.profiles import ProfileService
from devreg.core.records import Caller
from devreg.dialect_d.shapes import DivisionOut, ProfileRef, Uuid

_record = msgspec.json.Decoder(DeviceRecord)


class FieldValueState(msgspec.Struct):
    id: Uuid
    name: str | None  # None: the field has been removed from its profile since
    value: str
    mandatory: bool | None


class DeviceStateOut(msgspec.Struct):
    id: Uuid
    account_id: Uuid
    division: DivisionOut
    device_identifier: str
    device_profile: ProfileRef
    created: str
    updated: str
    status: str
    fields: list[FieldValueState]
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    last_seen: str | None
    reference_id: str | None
    live_mode: bool
    version: int


class HistoryRecordOut(msgspec.Struct):
    seq: int
    time: datetime  # RFC 3339 to the microsecond: `as_of` it to see the device then
    actor: ActorOut
    request_id: str
    action: str
    before: DeviceStateOut | None
    after: DeviceStateOut | None


class HistoryOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[HistoryRecordOut]


class LogPageOut(msgspec.Struct):
    limit: int
    after_seq: int
    next_after_seq: int | None  # None: nothing more now (ask again later for newer entries)
    records: list[EntryOut]


class DeviceRenderer:
    """Renders a device's records with names looked up once per answer: its division, and
    its profile's name and fields (as they were at `time` when the log knows them, else as
    they are now)."""

    def __init__(self, caller: Caller, profiles: ProfileService, log: ChangeLogService) -> None:
        self.caller = caller
        self.profiles = profiles
        self.log = log
        self._divisions: dict[bytes, DivisionOut] = {}
        self._profiles: dict[tuple[bytes, int | None], ProfileRecord] = {}

    async def _division(self, division_id: bytes) -> DivisionOut:
        if division_id not in self._divisions:
            try:
                division = await self.profiles.division(self.caller, division_id)
                name = division.name
            except NotFound:
                name = ""
            self._divisions[division_id] = DivisionOut(id=render_uuid(division_id), name=name)
        return self._divisions[division_id]

    async def _profile(self, profile_id: bytes, time: int | None) -> ProfileRecord:
        key = (profile_id, time)
        if key not in self._profiles:
            found = None if time is None else await self.log.profile_as_of(profile_id, time)
            if found is None:
                current = await self.profiles.profile(self.caller, profile_id)
                found = profile_record(current.profile, current.fields)
            self._profiles[key] = found
        return self._profiles[key]

    async def state(self, record: DeviceRecord, time: int | None = None) -> DeviceStateOut:
        profile_id = parse_uuid(record.device_profile_id) or b""
        division_id = parse_uuid(record.division_id) or b""
        profile = await self._profile(profile_id, time)
        fields = {f.id: f for f in profile.fields}
        return DeviceStateOut(
            id=record.id, account_id=record.account_id,
            division=await self._division(division_id),
            device_identifier=record.device_identifier or "",
            device_profile=ProfileRef(
id=record.device_profile_id, name=profile.name),
            created=render_rfc3339(record.created), updated=render_rfc3339(record.updated),
            status=record.status,
            fields=[
                FieldValueState(
                    id=value.id,
                    name=fields[value.id].name if value.id in fields else None,
                    value=value.value,
                    mandatory=fields[value.id].mandatory if value.id in fields else None,
                )
                for value in record.fields
            ],
            device_api_allow_read=record.device_api_allow_read,
            device_api_allow_write=record.device_api_allow_write,
            device_api_allow_renew_certificate=record.device_api_allow_renew_certificate,
            last_seen=None if record.last_seen is None else render_rfc3339(record.last_seen),
            reference_id=record.reference_id, live_mode=record.live_mode,
            version=record.version,
        )  # fmt: skip

    async def history_record(self, entry: Entry) -> HistoryRecordOut:
        before = None if entry.before is None else await self.state(_record.decode(entry.before))
        after = None if entry.after is None else await self.state(_record.decode(entry.after))
        return HistoryRecordOut(
            seq=entry.seq, time=datetime_of_us(entry.time), actor=actor_of(entry),
            request_id=entry.request_id, action=entry.action, before=before, after=after,
        )  # fmt: skip
