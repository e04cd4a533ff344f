"""`devreg import devices`: JSON lines (core/bulk.py's format) into one account, all or
nothing.

The file is streamed: lines are decoded and checked a chunk at a time, the chunk's ids,
references and identifiers are looked up in the store (inside the import's transaction,
so earlier chunks of the same file count too), and its good devices are inserted. Bad
lines are collected with their numbers and reading goes on to the end, so one run reports
every problem; if there was any, the transaction is rolled back and nothing is written.
Memory holds one chunk plus 20 bytes per imported device, whatever the file's size.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable

import msgspec
from msgspec import UnsetType

from devreg.core.bulk import CHUNK, AccountProfiles, DeviceLine, FieldValueLine, load_account
from devreg.core.clock import now_us, us_of_datetime
from devreg.core.devices import check_device_identifier, check_field_values, check_reference_id
from devreg.core.errors import Conflict, DomainError, InvalidInput
from devreg.core.ids import IdSequence, parse_prefixed, parse_uuid, render_uuid
from devreg.core.profiles import Profile
from devreg.core.quotas import DEFAULT_QUOTAS, Quotas, check_devices
from devreg.core.records import Device, DeviceStatus, Origin
from devreg.core.store import DeviceImport, DeviceStore, DuplicateValue, MissingReference

MAX_SHOWN = 100  # bad lines described; the rest are counted
_STATUS = {"ACTIVE": DeviceStatus.ACTIVE, "DISABLED": DeviceStatus.DISABLED}


class LineError(msgspec.Struct, frozen=True):
    line: int  # 1-based, as editors number lines
    message: str


class ImportRefused(DomainError):
    """Some lines are bad; nothing was written. `errors` describes the first MAX_SHOWN."""

    def __init__(self, errors: list[LineError], bad_lines: int) -> None:
        super().__init__(f"{bad_lines} bad line(s): nothing was imported")
        self.errors = errors
        self.bad_lines = bad_lines


class _Row(msgspec.Struct):
    line: int
    device: Device
    values: dict[bytes, str]
    id_given: bool


class _Importer:
    def __init__(self, account: AccountProfiles, now: int, quotas: Quotas, origin: Origin) -> None:
        self._origin = origin
        self._account = account
        self._quotas = quotas
        self._now = now
        self._next_id = IdSequence()
        self._decoder = msgspec.json.Decoder(DeviceLine)
        self.imported = 0
        self.bad_lines = 0
        self.errors: list[LineError] = []
        self._chunk: list[_Row] = []
        self._chunk_errors: list[LineError] = []
        # Uniqueness inside the chunk; across chunks the store's lookups answer.
        self._ids: dict[bytes, int] = {}
        self._references: dict[tuple[bool, str], int] = {}
        self._identifiers: dict[tuple[bytes, bool, str], int] = {}
        # Every device inserted, in order: its id (16 bytes) and line, so that a value
        # taken by one of them can be reported as "on line N" without a dict per device.
        self._inserted_ids = bytearray()
        self._inserted_lines = array("I")  # 4 bytes a line number

    def __len__(self) -> int:
        """Lines read since the last flush, good or bad: a file of bad lines is flushed
        (and its errors trimmed to the shown ones) as often as a good one."""
        return len(self._chunk) + len(self._chunk_errors)

    def add(self, number: int, raw: bytes) -> None:
        try:
            line = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:  # also ValidationError: wrong type, unknown key
            if raw.strip():  # blank lines (a trailing newline, say) are no devices
                self._fail(number, str(exc))
            return
        try:
            row = self._row(number, line)
        except InvalidInput as exc:
            self._fail(number, exc.message)
            return
        earlier = self._claim(row)
        if earlier is not None:
            self._fail(number, earlier)
            return
        self._chunk.append(row)

    def _fail(self, number: int, message: str) -> None:
        self._chunk_errors.append(LineError(number, message))

    def _row(self, number: int, line: DeviceLine) -> _Row:
        device_id, id_given = self._device_id(line)
        profile = self._account.resolve(line.device_profile, line.division)
        reference = None if line.reference_id is None else check_reference_id(line.reference_id)
        identifier = (
            None
            if line.device_identifier is None
            else check_device_identifier(line.device_identifier)
        )
        values = self._values(profile, line.fields)
        now = self._now
        created = now if isinstance(line.created, UnsetType) else us_of_datetime(line.created)
        updated = (
            max(now, created) if isinstance(line.updated, UnsetType)
            else us_of_datetime(line.updated)
        )  # fmt: skip
        if updated < created:
            raise InvalidInput("updated is before created")
        flags = profile.profile
        device = Device(
            id=device_id,
            account_id=self._account.account_id,
            live_mode=line.live_mode,
            reference_id=reference,
            device_identifier=identifier,
            division_id=profile.division.id,
            profile_id=flags.id,
            status=_STATUS[line.status],
            allow_read=_flag(line.device_api_allow_read, flags.allow_read),
            allow_write=_flag(line.device_api_allow_write, flags.allow_write),
            allow_renew=_flag(line.device_api_allow_renew, flags.allow_renew),
            last_seen=None if line.last_seen is None else us_of_datetime(line.last_seen),
            created_at=created,
            updated_at=updated,
            version=1,
        )
        return _Row(number, device, values, id_given)

    def _device_id(self, line: DeviceLine) -> tuple[bytes, bool]:
        """The id the line gives (a migration keeps its ids), else a new one."""
        by_uuid = by_prefix = None
        if not isinstance(line.id, UnsetType):
            by_uuid = parse_uuid(line.id)
            if by_uuid is None:
                raise InvalidInput("id is not a UUID (8-4-4-4-12 hex digits)")
        if not isinstance(line.flatpeak_id, UnsetType):
            by_prefix = parse_prefixed("dev", line.flatpeak_id)
            if by_prefix is None:
                raise InvalidInput("flatpeak_id is not dev_ and 32 lowercase hex digits")
        if by_uuid is not None and by_prefix is not None and by_uuid != by_prefix:
            raise InvalidInput("id and flatpeak_id name different devices")
        given = by_uuid or by_prefix
        return (self._next_id(), False) if given is None else (given, True)

    def _values(self, profile: Profile, fields: list[FieldValueLine]) -> dict[bytes, str]:
        """Field values by name -> by id, then dialect D's rule for them (known fields
        once, at most 1024 characters, mandatory ones present)."""
        ids = self._account.field_ids[profile.profile.id]
        given: list[tuple[bytes, str]] = []
        for index, field in enumerate(fields):
            field_id = ids.get(field.name)
            if field_id is None:
                raise InvalidInput(
                    f"fields[{index}].name {field.name!r} is not a field of device profile"
                    f" {profile.profile.name!r}"
                )
            given.append((field_id, field.value))
        return check_field_values(profile, given)

    def _claim(self, row: _Row) -> str | None:
        """Take the row's unique values within the chunk; what is wrong if one is taken."""
        device = row.device
        reference = device.live_mode, device.reference_id or ""
        identifier = device.division_id, device.live_mode, device.device_identifier or ""
        if row.id_given and device.id in self._ids:
            return f"id {render_uuid(device.id)} is also on line {self._ids[device.id]}"
        if device.reference_id is not None and reference in self._references:
            earlier = self._references[reference]
            return f"reference_id {device.reference_id!r} is also on line {earlier}"
        if device.device_identifier is not None and identifier in self._identifiers:
            earlier = self._identifiers[identifier]
            return f"device_identifier {device.device_identifier!r} is also on line {earlier}"
        if row.id_given:
            self._ids[device.id] = row.line
        if device.reference_id is not None:
            self._references[reference] = row.line
        if device.device_identifier is not None:
            self._identifiers[identifier] = row.line
        return None

    async def flush(self, writer: DeviceImport) -> None:
        """Check the chunk against the store, insert its good devices, note its errors."""
        rows, self._chunk = self._chunk, []
        self._ids.clear()
        self._references.clear()
        self._identifiers.clear()
        taken = await self._taken(writer, rows)
        good = [row for row in rows if row.line not in taken]
        for row in rows:
            if row.line in taken:
                self._fail(row.line, taken[row.line])
        if good:
            # Inserted even when the file already has bad lines (the import will be rolled
            # back): later lines are then checked against these, as they would be.
            await self._insert(writer, good)
        errors, self._chunk_errors = sorted(self._chunk_errors, key=_by_line), []
        self.bad_lines += len(errors)
        self.errors.extend(errors[: MAX_SHOWN - len(self.errors)])

    async def _taken(self, writer: DeviceImport, rows: list[_Row]) -> dict[int, str]:
        """Lines whose id, reference or identifier a stored device (or one inserted from
        an earlier chunk) already has, and what is wrong with each."""
        found: dict[int, str] = {}
        with_ids = [row for row in rows if row.id_given]
        if with_ids:
            held = await writer.taken_ids([row.device.id for row in with_ids])
            for row in with_ids:
                if row.device.id in held:
                    what = f"id {render_uuid(row.device.id)}"
                    found[row.line] = self._taken_by(what, row.device.id, "is a stored device")
        groups: dict[tuple[bool, bytes | None], list[_Row]] = {}
        for row in rows:
            device = row.device
            if device.reference_id is not None:
                groups.setdefault((device.live_mode, None), []).append(row)
            if device.device_identifier is not None:
                groups.setdefault((device.live_mode, device.division_id), []).append(row)
        for (live_mode, division_id), members in groups.items():
            if division_id is None:
                column, values = "reference_id", [row.device.reference_id or "" for row in members]
                holders = await writer.taken_references(self._account.account_id, live_mode, values)
            else:
                column = "device_identifier"
                values = [row.device.device_identifier or "" for row in members]
                holders = await writer.taken_identifiers(division_id, live_mode, values)
            for row, value in zip(members, values, strict=True):
                holder = holders.get(value)
                if holder is not None and row.line not in found:
                    stored = f"is already used by device {render_uuid(holder)}"
                    found[row.line] = self._taken_by(f"{column} {value!r}", holder, stored)
        return found

    def _taken_by(self, what: str, holder: bytes, stored: str) -> str:
        line = self._line_of(holder) if len(self.errors) < MAX_SHOWN else None
        if line is not None:
            return f"{what} is also on line {line}"
        return f"{what} {stored}"

    def _line_of(self, device_id: bytes) -> int | None:
        """The line of a device this import inserted (only when a line is refused, and only
        for the shown ones: a scan of 16 bytes per device, no index kept for it)."""
        start = 0
        while (at := self._inserted_ids.find(device_id, start)) >= 0:
            if at % 16 == 0:
                return self._inserted_lines[at // 16]
            start = at + 1
        return None

    async def _insert(self, writer: DeviceImport, rows: list[_Row]) -> None:
        devices = [row.device for row in rows]
        for live_mode in (True, False):
            adding = sum(1 for device in devices if device.live_mode is live_mode)
            if adding:  # the count includes this import's earlier chunks
                held = await writer.count_devices(self._account.account_id, live_mode)
                check_devices(self._quotas, held, adding)
        values = [
            (row.device.id, field_id, value)
            for row in rows
            for field_id, value in row.values.items()
        ]
        try:
            await writer.insert_devices_bulk(devices, values, self._origin)
        except DuplicateValue as exc:
            # Looked up in this transaction a moment ago: another process wrote it since.
            raise Conflict(
                f"lines {rows[0].line}-{rows[-1].line}: {exc.field} taken meanwhile by another"
                " writer; nothing was imported, run the import again",
                f"duplicate_{exc.field}",
            ) from exc
        except MissingReference as exc:
            raise InvalidInput(
                "a device profile or field was removed while importing; nothing was imported"
            ) from exc
        for device in devices:
            self._inserted_ids += device.id
        self._inserted_lines.extend(row.line for row in rows)
        self.imported += len(rows)


def _by_line(error: LineError) -> int:
    return error.line


def _flag(given: bool | UnsetType, default: bool) -> bool:
    return default if isinstance(given, UnsetType) else given


async def import_devices(
    store: DeviceStore,
    account_id: bytes,
    lines: Iterable[bytes],
    *,
    clock: Callable[[], int] = now_us,
    chunk: int = CHUNK,
    quotas: Quotas = DEFAULT_QUOTAS,
    origin: Origin,
) -> int:
    """Import every line into the account in one transaction; returns how many devices.
    Raises ImportRefused (nothing written) when any line is bad, NotFound for an unknown
    account, Conflict when another writer took a value during the import, QuotaExceeded
    (nothing written) when the account would hold more devices than its quota."""
    account = await load_account(store, account_id)
    importer = _Importer(account, clock(), quotas, origin)
    async with store.bulk_import() as writer:
        for number, raw in enumerate(lines, 1):
            importer.add(number, raw)
            if len(importer) >= chunk:
                await importer.flush(writer)
        await importer.flush(writer)
        if importer.bad_lines:
            raise ImportRefused(importer.errors, importer.bad_lines)  # rolls the import back
    return importer.imported
