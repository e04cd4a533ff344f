"""SqlDeviceStore: every DeviceStore method, written once over a minimal driver.

The SQLite and PostgreSQL stores only say how to run a statement and how to hold a
transaction; what is read and written, and in which order, lives here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import chain
from typing import Any, Protocol, TypeVar

import msgspec

from devreg.changelog import changes
from devreg.changelog.entries import Action, Change, Entry, Head
from devreg.changelog.store import EntryFilter
from devreg.core.clock import now_us
from devreg.core.records import (
    Account,
    ApiKey,
    Certificate,
    Device,
    DeviceProfile,
    DeviceStatus,
    Division,
    KeyStanding,
    Origin,
    ProfileField,
    RevokedEntry,
)
from devreg.core.store import (
    DeviceChange,
    DeviceFilter,
    DeviceImport,
    DuplicateValue,
    ListDirection,
    NotRotatable,
    OverLimit,
    ParentRevoked,
)
from devreg.storage import change_log, sql
from devreg.storage.batch import Batch

Params = Sequence[Any]
T = TypeVar("T")
# Rows per multi-row INSERT and values per IN list: 500 devices are 7,500 parameters, well
# under both SQLite's (32,766) and PostgreSQL's (32,767) limit per statement.
BULK_ROWS = 500


class SqlRunner(Protocol):
    """Runs one statement; raises DuplicateValue / StoreUnavailable, never driver errors."""

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]: ...

    async def run(self, statement: str, params: Params = ()) -> None: ...


def _standing(rows: Sequence[Sequence[Any]]) -> KeyStanding | None:
    """A key's standing from its rows: one per division it is limited to, else one."""
    if not rows:
        return None
    columns = len(sql.KEY_COLUMNS.split(","))
    row = rows[0]
    limits = [bytes(r[columns + 2]) for r in rows if r[columns + 2] is not None]
    key = sql.key_from_row(row[:columns])
    return KeyStanding(
        key=msgspec.structs.replace(key, divisions=frozenset(limits)) if limits else key,
        account_disabled=row[columns] is not None,
        generation=int(row[columns + 1]),
    )


def _limited(keys: list[ApiKey], rows: Sequence[Sequence[Any]]) -> list[ApiKey]:
    """`keys` with their divisions, from (key_id, division_id) rows."""
    limits: dict[bytes, set[bytes]] = {}
    for key_id, division_id in rows:
        limits.setdefault(bytes(key_id), set()).add(bytes(division_id))
    return [
        msgspec.structs.replace(key, divisions=frozenset(limits[key.id]))
        if key.id in limits else key
        for key in keys
    ]  # fmt: skip


async def _insert_key(tx: SqlRunner, key: ApiKey) -> None:
    await tx.run(sql.INSERT_API_KEY, sql.key_row(key))
    for division_id in sorted(key.divisions or ()):
        await tx.run(sql.INSERT_KEY_DIVISION, (key.id, division_id))


class SqlDeviceStore:
    # Whether a write transaction holds the database's one write lock (SQLite): its reads
    # are then of the latest state already, and need not lock the rows they read.
    serialized_writes = False

    def runner(self) -> SqlRunner:
        """Statements outside a transaction, each committed on its own."""
        raise NotImplementedError

    def transaction(self) -> AbstractAsyncContextManager[SqlRunner]:
        """All statements run through the yielded runner commit together, or none does."""
        raise NotImplementedError

    async def _one(self, statement: str, params: Params = ()) -> Sequence[Any] | None:
        rows = await self.runner().rows(statement, params)
        return rows[0] if rows else None

    def storage_full(self) -> bool:
        raise NotImplementedError

    async def ping(self) -> None:
        await self._one(sql.SELECT_HEALTH)

    async def close(self) -> None:
        raise NotImplementedError

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        """`work` in one transaction (a write of a group-commit batch); it awaits only the
        runner it is given and does nothing else, as it may run again (on PostgreSQL, when
        it lost a deadlock). Once queued it runs to its end even if its caller is
        cancelled: a cancelled caller's write may commit."""
        raise NotImplementedError

    async def _logged(
        self,
        origin: Origin,
        work: Callable[[SqlRunner], Awaitable[tuple[T, list[Change]]]],
        at: int | None = None,
    ) -> T:
        """The one way a change is written: `work` makes it and says what changed, and the
        change log's entries are appended in the same transaction, last. `at`: the time
        the change stamps on its record (a device's `updated`), which its entries then
        carry too (never earlier than the log's last), so "as of" that time includes it."""

        async def logged(tx: SqlRunner) -> T:
            result, changes = await work(tx)
            await change_log.append(tx, origin, changes, now_us() if at is None else at)
            return result

        return await self.atomic(logged)

    # --- accounts and keys

    async def create_account(
        self,
        account: Account,
        keys: list[ApiKey],
        division: Division,
        profile: DeviceProfile,
        origin: Origin,
    ) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(sql.INSERT_ACCOUNT, sql.account_row(account))
            for key in keys:
                await tx.run(sql.INSERT_API_KEY, sql.key_row(key))
            await tx.run(sql.INSERT_DIVISION, sql.division_row(division))
            await tx.run(sql.INSERT_PROFILE, sql.profile_row(profile))
            return None, [
                changes.created_account(account),
                *(changes.created_key(key) for key in keys),
                changes.created_division(division),
                changes.created_profile(profile, []),
            ]

        await self._logged(origin, work)

    async def account_api_version(self, account_id: bytes) -> str | None:
        row = await self._one(sql.SELECT_ACCOUNT_VERSION, (account_id,))
        return None if row is None else str(row[0])

    async def set_account_api_version(
        self, account_id: bytes, version: str, origin: Origin
    ) -> bool:
        async def work(tx: SqlRunner) -> tuple[bool, list[Change]]:
            before = await tx.rows(sql.SELECT_ACCOUNT, (account_id,))
            if not await tx.rows(sql.UPDATE_ACCOUNT_VERSION, (version, account_id)):
                return False, []
            old = sql.account_from_row(before[0])
            new = msgspec.structs.replace(old, api_version=version)
            return True, [changes.updated_account(old, new)]

        return await self._logged(origin, work)

    async def find_api_key(self, key_hash: bytes) -> ApiKey | None:
        standing = await self.key_standing_by_hash(key_hash)
        return None if standing is None else standing.key

    async def key_standing_by_hash(self, key_hash: bytes) -> KeyStanding | None:
        return _standing(await self.runner().rows(sql.SELECT_KEY_STANDING_BY_HASH, (key_hash,)))

    async def key_standing_by_id(self, key_id: bytes) -> KeyStanding | None:
        return _standing(await self.runner().rows(sql.SELECT_KEY_STANDING_BY_ID, (key_id,)))

    async def access_mark(self) -> int:
        """The access mark's generation (migration 0008): it moves in the transaction of
        every change that may refuse a credential a process holds verified."""
        row = await self._one(sql.SELECT_ACCESS_MARK)
        assert row is not None  # made by migration 0008
        return int(row[0])

    async def access_snapshot(self) -> tuple[int, frozenset[bytes]]:
        rows = await self.runner().rows(sql.SELECT_ACCESS_SNAPSHOT)
        assert rows  # the mark's row, made by migration 0008
        disabled = frozenset(bytes(row[1]) for row in rows if row[1] is not None)
        return int(rows[0][0]), disabled

    async def insert_api_key(self, key: ApiKey, at_most: int, now: int, origin: Origin) -> bool:
        async def work(tx: SqlRunner) -> tuple[bool, list[Change]]:
            await tx.run(sql.LOCK_ACCOUNT, (key.account_id,))  # counts stay true per account
            (held,) = (await tx.rows(sql.COUNT_LIVE_ACCOUNT_KEYS, (key.account_id, now)))[0]
            if int(held) >= at_most:
                return False, []
            await _insert_key(tx, key)
            return True, [changes.created_key(key)]

        return await self._logged(origin, work)

    async def api_keys(self, account_id: bytes) -> list[ApiKey]:
        # A key's divisions are written with it and never change: two reads agree.
        reader = self.runner()
        rows = await reader.rows(sql.SELECT_ACCOUNT_KEYS, (account_id,))
        limits = await reader.rows(sql.SELECT_ACCOUNT_KEY_DIVISIONS, (account_id,))
        return _limited([sql.key_from_row(row) for row in rows], limits)

    async def api_key(self, key_id: bytes) -> ApiKey | None:
        return await self._key(self.runner(), key_id, sql.SELECT_API_KEY_BY_ID)

    async def _key(self, tx: SqlRunner, key_id: bytes, read: str) -> ApiKey | None:
        rows = await tx.rows(read, (key_id,))
        if not rows:
            return None
        limits = await tx.rows(sql.SELECT_KEY_DIVISIONS, (key_id,))
        return _limited([sql.key_from_row(rows[0])], limits)[0]

    async def _locked_key(self, tx: SqlRunner, key_id: bytes) -> ApiKey | None:
        read = sql.SELECT_API_KEY_BY_ID if self.serialized_writes else sql.LOCK_API_KEY_BY_ID
        return await self._key(tx, key_id, read)

    async def revoke_api_key(
        self, key_id: bytes, at: int, origin: Origin
    ) -> tuple[bool, ApiKey] | None:
        async def work(tx: SqlRunner) -> tuple[tuple[bool, ApiKey] | None, list[Change]]:
            old = await self._locked_key(tx, key_id)
            if old is None or old.revoked_at is not None:
                return (None if old is None else (False, old)), []
            await tx.run(sql.REVOKE_API_KEY, (at, key_id))
            new = msgspec.structs.replace(old, revoked_at=at)
            return (True, new), [changes.changed_key(Action.API_KEY_REVOKE, old, new)]

        return await self._logged(origin, work)

    async def rotate_api_key(
        self, old_id: bytes, new: ApiKey, ends: int | None, at: int, at_most: int, origin: Origin
    ) -> ApiKey:
        async def work(tx: SqlRunner) -> tuple[ApiKey, list[Change]]:
            await tx.run(sql.LOCK_ACCOUNT, (new.account_id,))  # the count and the successor
            old = await self._locked_key(tx, old_id)
            if old is None or old.revoked_at is not None:
                raise NotRotatable("revoked")
            if old.expires_at is not None and old.expires_at <= at:
                raise NotRotatable("expired")
            if await tx.rows(sql.HAS_SUCCESSOR, (old.account_id, old.id)):
                raise NotRotatable("rotated already")
            if ends is None:
                await tx.run(sql.REVOKE_API_KEY, (at, old_id))
                after = msgspec.structs.replace(old, revoked_at=at)
            else:
                (held,) = (await tx.rows(sql.COUNT_LIVE_ACCOUNT_KEYS, (old.account_id, at)))[0]
                if int(held) >= at_most:
                    raise OverLimit
                # never later than it would have ended anyway
                until = ends if old.expires_at is None else min(ends, old.expires_at)
                await tx.run(sql.EXPIRE_API_KEY, (until, old_id))
                after = msgspec.structs.replace(old, expires_at=until)
            await _insert_key(tx, new)
            return after, [
                changes.created_key(new),
                changes.changed_key(Action.API_KEY_ROTATE, old, after),
            ]

        return await self._logged(origin, work)

    async def touch_api_keys(self, used: dict[bytes, int]) -> None:
        async def work(tx: SqlRunner) -> None:
            for key_id, at in sorted(used.items()):  # one order: two flushes never deadlock
                await tx.run(sql.TOUCH_API_KEY, (at, key_id, at))

        await self.atomic(work)

    async def account(self, account_id: bytes) -> Account | None:
        row = await self._one(sql.SELECT_ACCOUNT, (account_id,))
        return None if row is None else sql.account_from_row(row)

    async def accounts(self) -> list[Account]:
        return [sql.account_from_row(row) for row in await self.runner().rows(sql.SELECT_ACCOUNTS)]

    async def set_account_disabled(
        self, account_id: bytes, at: int | None, origin: Origin
    ) -> tuple[bool, Account] | None:
        async def work(tx: SqlRunner) -> tuple[tuple[bool, Account] | None, list[Change]]:
            read = sql.SELECT_ACCOUNT if self.serialized_writes else sql.LOCK_ACCOUNT_ROW
            rows = await tx.rows(read, (account_id,))
            if not rows:
                return None, []
            old = sql.account_from_row(rows[0])
            if (old.disabled_at is None) == (at is None):
                return (False, old), []
            await tx.run(sql.SET_ACCOUNT_DISABLED, (at, account_id))
            new = msgspec.structs.replace(old, disabled_at=at)
            return (True, new), [changes.account_status(old, new)]

        return await self._logged(origin, work)

    # --- divisions and profiles

    async def insert_division(self, division: Division, origin: Origin) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(sql.INSERT_DIVISION, sql.division_row(division))
            return None, [changes.created_division(division)]

        await self._logged(origin, work)

    async def get_division(self, account_id: bytes, division_id: bytes) -> Division | None:
        row = await self._one(sql.SELECT_DIVISION, (account_id, division_id))
        return None if row is None else sql.division_from_row(row)

    async def list_divisions(
        self, account_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[Division]:
        rows = await self._page(sql.SELECT_DIVISIONS, [account_id], limit, offset)
        return [sql.division_from_row(row) for row in rows]

    async def count_divisions(self, account_id: bytes) -> int:
        return await self._count(sql.COUNT_DIVISIONS, (account_id,))

    async def _page(
        self, statement: str, params: list[Any], limit: int | None, offset: int
    ) -> list[Sequence[Any]]:
        if limit is not None:
            statement, params = statement + sql.PAGE, [*params, limit, offset]
        return await self.runner().rows(statement, params)

    async def _count(self, statement: str, params: Params) -> int:
        row = await self._one(statement, params)
        return 0 if row is None else int(row[0])

    async def insert_profile(
        self, profile: DeviceProfile, fields: list[ProfileField], origin: Origin
    ) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(sql.INSERT_PROFILE, sql.profile_row(profile))
            for field in fields:
                await tx.run(sql.INSERT_FIELD, sql.field_row(field))
            return None, [changes.created_profile(profile, fields)]

        await self._logged(origin, work)

    async def update_profile(
        self,
        profile: DeviceProfile,
        fields: list[ProfileField],
        removed: list[bytes],
        origin: Origin,
    ) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            read = sql.SELECT_PROFILE if self.serialized_writes else sql.LOCK_PROFILE
            before_rows = await tx.rows(read, (profile.account_id, profile.id))
            old_fields = [
                sql.field_from_row(row)
                for row in await tx.rows(sql.in_list(sql.SELECT_FIELDS_OF, 1), (profile.id,))
            ]
            existing = {f.id for f in old_fields}
            logged: list[Change] = []
            await tx.run(
                sql.UPDATE_PROFILE,
                (profile.name, profile.allow_read, profile.allow_write, profile.allow_renew,
                 profile.updated_at, profile.account_id, profile.id),
            )  # fmt: skip
            for field_id in removed:
                # The devices losing a value are written too: their version moves, and
                # each is in the log with the value it lost.
                affected = await tx.rows(sql.DEVICES_WITH_FIELD, (field_id,))
                olds = await _device_states(
                    tx, [bytes(row[0]) for row in affected], lock=not self.serialized_writes
                )
                await tx.run(sql.BUMP_DEVICES_WITH_FIELD, (profile.updated_at, field_id))
                await tx.run(sql.DELETE_FIELD_VALUES, (field_id,))
                news = await _device_states(tx, list(olds))
                logged += [
                    changes.updated_device(Action.DEVICE_UPDATE, olds[i], news[i]) for i in olds
                ]
                await tx.run(sql.DELETE_FIELD, (field_id,))
            for field in fields:
                if field.id in existing:
                    await tx.run(sql.PARK_FIELD, (" parked:" + field.id.hex(), field.id))
            for field in fields:
                if field.id in existing:
                    await tx.run(
                        sql.UPDATE_FIELD, (field.name, field.mandatory, field.position, field.id)
                    )
                else:
                    await tx.run(sql.INSERT_FIELD, sql.field_row(field))
            old = sql.profile_from_row(before_rows[0])
            logged.insert(0, changes.updated_profile(old, old_fields, profile, fields))
            return None, logged

        await self._logged(origin, work)

    async def get_profile(self, account_id: bytes, profile_id: bytes) -> DeviceProfile | None:
        row = await self._one(sql.SELECT_PROFILE, (account_id, profile_id))
        return None if row is None else sql.profile_from_row(row)

    async def default_profile(self, account_id: bytes) -> DeviceProfile | None:
        row = await self._one(sql.SELECT_DEFAULT_PROFILE, (account_id,))
        return None if row is None else sql.profile_from_row(row)

    async def list_profiles(
        self, account_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[DeviceProfile]:
        rows = await self._page(sql.SELECT_PROFILES, [account_id], limit, offset)
        return [sql.profile_from_row(row) for row in rows]

    async def count_profiles(self, account_id: bytes) -> int:
        return await self._count(sql.COUNT_PROFILES, (account_id,))

    async def profile_fields(self, profile_ids: list[bytes]) -> dict[bytes, list[ProfileField]]:
        found: dict[bytes, list[ProfileField]] = {pid: [] for pid in profile_ids}
        if not profile_ids:
            return found
        statement = sql.in_list(sql.SELECT_FIELDS_OF, len(profile_ids))
        for row in await self.runner().rows(statement, profile_ids):
            field = sql.field_from_row(row)
            found[field.profile_id].append(field)
        return found

    # --- devices

    async def insert_device(self, device: Device, values: dict[bytes, str], origin: Origin) -> None:
        """The device, its values, its place in the counter and its log entry: one write
        (on SQLite one item of a group commit, not a transaction waiting for its turn)."""
        counted = (device.account_id, device.live_mode, device.id, 1)

        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(sql.INSERT_DEVICE, sql.device_row(device))
            for field_id, value in values.items():
                await tx.run(sql.INSERT_VALUE, (device.id, field_id, value))
            await _add_to_count(tx, *counted)
            return None, [changes.created_device(Action.DEVICE_CREATE, device, values)]

        await self._logged(origin, work, device.created_at)

    async def get_device(
        self, account_id: bytes, live_mode: bool, device_id: bytes, *, include_deleted: bool = False
    ) -> Device | None:
        statement = sql.SELECT_DEVICE_ANY_STATUS if include_deleted else sql.SELECT_DEVICE
        row = await self._one(statement, (device_id, account_id, live_mode))
        return None if row is None else sql.device_from_row(row)

    async def get_device_by_id(self, device_id: bytes) -> Device | None:
        row = await self._one(sql.SELECT_DEVICE_BY_ID, (device_id,))
        return None if row is None else sql.device_from_row(row)

    async def list_devices(
        self,
        account_id: bytes,
        live_mode: bool,
        *,
        limit: int,
        reference_id: str | None = None,
        cursor: tuple[int, bytes] | None = None,
        direction: ListDirection = "older",
        division_ids: frozenset[bytes] | None = None,
    ) -> list[Device]:
        statement, params, ascending = sql.list_devices_query(
            account_id, live_mode, limit, reference_id, cursor, direction, division_ids
        )
        devices = [sql.device_from_row(row) for row in await self.runner().rows(statement, params)]
        if ascending:
            devices.reverse()
        return devices

    async def query_devices(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, limit: int, offset: int
    ) -> list[Device]:
        page, _, page_params, _ = sql.query_devices_statements(
            account_id, live_mode, where, limit, offset
        )
        return [sql.device_from_row(row) for row in await self.runner().rows(page, page_params)]

    async def query_device_ids(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, limit: int, offset: int
    ) -> list[bytes]:
        page, _, params, _ = sql.query_devices_statements(
            account_id, live_mode, where, limit, offset, columns="id"
        )
        return [bytes(row[0]) for row in await self.runner().rows(page, params)]

    async def devices_by_ids(
        self, account_id: bytes, live_mode: bool, device_ids: Sequence[bytes]
    ) -> list[Device]:
        if not device_ids:
            return []
        statement = sql.in_list(sql.SELECT_DEVICES_BY_IDS, len(device_ids))
        rows = await self.runner().rows(statement, list(device_ids))
        found = {
            device.id: device
            for device in map(sql.device_from_row, rows)
            if device.account_id == account_id
            and device.live_mode == live_mode
            and device.status is not DeviceStatus.DELETED
        }
        return [found[i] for i in device_ids if i in found]

    async def count_devices(self, account_id: bytes, live_mode: bool) -> int:
        return await self._count(sql.SELECT_DEVICE_COUNT, (account_id, live_mode))

    async def count_matching(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, at_most: int
    ) -> int:
        _, count, _, params = sql.query_devices_statements(account_id, live_mode, where, 0, 0)
        return await self._count(count, [*params, at_most])

    async def field_values(self, device_ids: list[bytes]) -> dict[bytes, dict[bytes, str]]:
        found: dict[bytes, dict[bytes, str]] = {}
        if not device_ids:
            return found
        statement = sql.in_list(sql.SELECT_VALUES_OF, len(device_ids))
        for device_id, field_id, value in await self.runner().rows(statement, device_ids):
            found.setdefault(bytes(device_id), {})[bytes(field_id)] = value
        return found

    async def update_device(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        change: DeviceChange,
        now: int,
        origin: Origin,
        action: Action,
        *,
        writable_only: bool = False,
        revoke_reason: str | None = None,
    ) -> Device | None:
        statement, params = sql.update_device_statement(
            change, account_id, live_mode, device_id, now, writable_only
        )
        deleting = change.status is DeviceStatus.DELETED

        async def work(tx: SqlRunner) -> tuple[Device | None, list[Change]]:
            olds = await _device_states(tx, [device_id], lock=not self.serialized_writes)
            rows = await tx.rows(statement, params)
            if not rows:
                return None, []
            updated = sql.device_from_row(rows[0])
            _, old_values = olds[device_id]
            values = old_values if change.values is msgspec.UNSET else change.values
            logged = [changes.updated_device(action, olds[device_id], (updated, values))]
            if deleting:
                await _add_to_count(tx, account_id, live_mode, device_id, -1)
                # Like its certificates, its EST secret must not work again after a restore.
                logged += await _revoke_secrets(tx, updated, now)
            if change.values is not msgspec.UNSET:
                await tx.run(sql.DELETE_VALUES, (device_id,))
                for field_id, value in change.values.items():
                    await tx.run(sql.INSERT_VALUE, (device_id, field_id, value))
            if revoke_reason is not None:
                logged += await _revoke_of_device(tx, updated, revoke_reason, now)
            return updated, logged

        return await self._logged(origin, work, now)

    async def restore_device(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        now: int,
        revoke_reason: str,
        origin: Origin,
    ) -> Device | None:
        async def work(tx: SqlRunner) -> tuple[Device | None, list[Change]]:
            olds = await _device_states(tx, [device_id], lock=not self.serialized_writes)
            rows = await tx.rows(sql.RESTORE_DEVICE, (now, device_id, account_id, live_mode))
            if not rows:
                return None, []
            restored = sql.device_from_row(rows[0])
            old = olds[device_id]
            logged = [changes.updated_device(Action.DEVICE_RESTORE, old, (restored, old[1]))]
            await _add_to_count(tx, account_id, live_mode, device_id, 1)
            # An issuance reads the device, then writes: one that read it before the delete
            # and wrote after it is in no revocation yet. Nothing issued before the restore
            # works after it.
            logged += await _revoke_of_device(tx, restored, revoke_reason, now)
            logged += await _revoke_secrets(tx, restored, now)
            return restored, logged

        return await self._logged(origin, work, now)

    async def touch_last_seen(self, device_id: bytes, now: int) -> None:
        await self.runner().run(sql.TOUCH_LAST_SEEN, (now, device_id))

    # --- bulk import and export

    def bulk_import(self) -> AbstractAsyncContextManager[DeviceImport]:
        return self._bulk_import()

    @asynccontextmanager
    async def _bulk_import(self) -> AsyncIterator[DeviceImport]:
        async with self.transaction() as tx:
            yield _SqlDeviceImport(tx, self.insert_many)

    async def insert_many(self, tx: SqlRunner, statement: str, rows: list[Params]) -> None:
        """Every row through the one-row INSERT `statement`, in multi-row INSERTs (one
        parse and round trip per BULK_ROWS rows); a driver with a faster bulk path
        (PostgreSQL's COPY) overrides this."""
        for batch in _batches(rows):
            params = list(chain.from_iterable(batch))
            await tx.run(sql.insert_rows(statement, len(batch)), params)

    async def devices_oldest_first(
        self, account_id: bytes, live_mode: bool, *, after: tuple[int, bytes] | None, limit: int
    ) -> list[Device]:
        if after is None:
            statement, params = sql.SELECT_OLDEST_FIRST, [account_id, live_mode, limit]
        else:
            statement, params = sql.SELECT_OLDEST_AFTER, [account_id, live_mode, *after, limit]
        return [sql.device_from_row(row) for row in await self.runner().rows(statement, params)]

    # --- certificates

    async def insert_certificate(
        self,
        certificate: Certificate,
        origin: Origin,
        action: Action,
        *,
        max_active: int | None = None,
    ) -> None:
        """Records the certificate and claims its key for the device; raises
        DuplicateValue("public_key") when another device holds the key, OverLimit when the
        device is at `max_active`."""

        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            # The device's row lock serialises issuance with revoke-all (which takes it
            # too), and the parent's with its revocation: a certificate minted by one that
            # is being revoked is either refused here or revoked with it, never left over.
            device = await tx.rows(sql.LOCK_DEVICE_RETURNING, (certificate.device_id,))
            if certificate.parent_id is not None:
                parent = await tx.rows(sql.LOCK_PARENT_CERTIFICATE, (certificate.parent_id,))
                if not parent or parent[0][0] is not None or parent[0][1] <= certificate.created_at:
                    raise ParentRevoked
            if max_active is not None:
                counted = await tx.rows(
                    sql.COUNT_ACTIVE_CERTIFICATES, (certificate.device_id, certificate.created_at)
                )
                if int(counted[0][0]) >= max_active:
                    raise OverLimit
            await tx.run(sql.CLAIM_KEY, (certificate.public_key_hash, certificate.device_id))
            holder = await tx.rows(sql.SELECT_KEY_HOLDERS, (certificate.public_key_hash,))
            if bytes(holder[0][0]) != certificate.device_id:
                raise DuplicateValue("public_key")
            await tx.run(sql.INSERT_CERTIFICATE, sql.certificate_row(certificate))
            live_mode = bool(device[0][0]) if device else None
            return None, [changes.certificate(action, None, certificate, live_mode)]

        await self._logged(origin, work)

    async def list_certificates(
        self, account_id: bytes, device_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[Certificate]:
        rows = await self._page(sql.SELECT_CERTIFICATES, [account_id, device_id], limit, offset)
        return [sql.certificate_from_row(row) for row in rows]

    async def count_certificates(self, account_id: bytes, device_id: bytes) -> int:
        return await self._count(sql.COUNT_CERTIFICATES, (account_id, device_id))

    async def find_certificate(self, fingerprint: bytes) -> Certificate | None:
        row = await self._one(sql.SELECT_CERTIFICATE, (fingerprint,))
        return None if row is None else sql.certificate_from_row(row)

    async def get_certificate(
        self, account_id: bytes, live_mode: bool, cert_id: bytes
    ) -> Certificate | None:
        params = (account_id, cert_id, account_id, live_mode)
        row = await self._one(sql.SELECT_CERTIFICATE_BY_ID, params)
        return None if row is None else sql.certificate_from_row(row)

    async def revoke_certificate(
        self,
        account_id: bytes,
        live_mode: bool,
        cert_id: bytes,
        reason: str,
        now: int,
        origin: Origin,
    ) -> Certificate | None:
        params = (now, reason, account_id, cert_id, account_id, live_mode)

        async def work(tx: SqlRunner) -> tuple[Certificate | None, list[Change]]:
            rows = await tx.rows(sql.REVOKE_CERTIFICATE, params)
            revoked = [sql.certificate_from_row(row) for row in rows]
            return (revoked[0] if revoked else None), _revocations(revoked, live_mode)

        return await self._logged(origin, work)

    async def count_active_certificates(self, device_id: bytes, now: int) -> int:
        row = await self._one(sql.COUNT_ACTIVE_CERTIFICATES, (device_id, now))
        assert row is not None
        return int(row[0])

    async def revoke_with_minted(
        self,
        account_id: bytes,
        live_mode: bool,
        cert_id: bytes,
        reason: str,
        now: int,
        origin: Origin,
    ) -> tuple[Certificate, list[Certificate]] | None:
        async def work(
            tx: SqlRunner,
        ) -> tuple[tuple[Certificate, list[Certificate]] | None, list[Change]]:
            revoking = (now, reason, account_id, cert_id, account_id, live_mode)
            rows = await tx.rows(sql.REVOKE_CERTIFICATE, revoking)
            newly = [sql.certificate_from_row(row) for row in rows]
            if not rows:
                finding = (account_id, cert_id, account_id, live_mode)
                rows = await tx.rows(sql.SELECT_CERTIFICATE_BY_ID, finding)
                if not rows:
                    return None, []
            minted = [
                sql.certificate_from_row(row)
                for row in await tx.rows(sql.REVOKE_MINTED, (cert_id, now, reason))
            ]
            found = (sql.certificate_from_row(rows[0]), minted)
            return found, _revocations(newly + minted, live_mode)

        return await self._logged(origin, work)

    async def revoke_all_certificates(
        self, account_id: bytes, device_id: bytes, reason: str, now: int, origin: Origin
    ) -> list[Certificate]:
        params = (now, reason, account_id, device_id)

        async def work(tx: SqlRunner) -> tuple[list[Certificate], list[Change]]:
            # After any issuance in progress for the device (insert_certificate holds this
            # lock), so that what it records is seen, and revoked, by the update.
            device = await tx.rows(sql.LOCK_DEVICE_RETURNING, (device_id,))
            rows = await tx.rows(sql.REVOKE_ALL_OF_DEVICE, params)
            revoked = [sql.certificate_from_row(row) for row in rows]
            return revoked, _revocations(revoked, bool(device[0][0]) if device else None)

        return await self._logged(origin, work)

    async def revoked_page(
        self, now: int, after: tuple[int, bytes] | None, limit: int
    ) -> list[RevokedEntry]:
        revoked_at, cert_id = after or (-1, b"")  # before any (revoked_at, id)
        params = (revoked_at, cert_id, now, limit)
        rows = await self.runner().rows(sql.SELECT_REVOKED_PAGE, params)
        return [RevokedEntry(bytes(row[0]), row[1], row[2], row[3]) for row in rows]

    async def revocation_mark(self) -> tuple[int, int | None]:
        row = await self._one(sql.SELECT_REVOCATION_MARK)
        assert row is not None
        return int(row[0]), row[1]

    async def insert_enrollment_secret(
        self,
        secret_id: bytes,
        device: Device,
        secret_hash: bytes,
        now: int,
        expires_at: int,
        origin: Origin,
        *,
        max_outstanding: int,
    ) -> int:
        async def work(tx: SqlRunner) -> tuple[int, list[Change]]:
            await tx.run(sql.LOCK_ACCOUNT, (device.account_id,))
            replaced = await _revoke_secrets(tx, device, now)
            counted = await tx.rows(sql.COUNT_OUTSTANDING_ENROLLMENTS, (device.account_id, now))
            if int(counted[0][0]) >= max_outstanding:
                raise OverLimit  # rolls the replacement back too
            row = (secret_id, device.account_id, device.id, secret_hash, now, expires_at)
            await tx.run(sql.INSERT_ENROLLMENT, row)
            made = changes.secret(
                Action.SECRET_CREATE, device, (secret_id, device.id, now, expires_at), "outstanding"
            )
            return len(replaced), [*replaced, made]

        return await self._logged(origin, work)

    async def revoke_enrollment_secrets(self, device: Device, now: int, origin: Origin) -> int:
        async def work(tx: SqlRunner) -> tuple[int, list[Change]]:
            revoked = await _revoke_secrets(tx, device, now)
            return len(revoked), revoked

        return await self._logged(origin, work)

    async def enrollment_secret_valid(
        self, device_id: bytes, secret_hash: bytes, now: int
    ) -> bytes | None:
        rows = await self.runner().rows(sql.FIND_ENROLLMENT, (device_id, secret_hash, now))
        return bytes(rows[0][0]) if rows else None

    async def consume_enrollment_secret(
        self, device: Device, secret_hash: bytes, now: int, origin: Origin
    ) -> bytes | None:
        params = (now, device.id, secret_hash, now)

        async def work(tx: SqlRunner) -> tuple[bytes | None, list[Change]]:
            rows = await tx.rows(sql.CONSUME_ENROLLMENT, params)
            if not rows:
                return None, []
            used = changes.secret(Action.SECRET_USE, device, _secret(rows[0]), "used")
            return bytes(rows[0][0]), [used]

        return await self._logged(origin, work)

    async def key_holders(self, public_key_hash: bytes) -> set[bytes]:
        rows = await self.runner().rows(sql.SELECT_KEY_HOLDERS, (public_key_hash,))
        return {bytes(row[0]) for row in rows}

    # --- the change log, read (it is written by every write above)

    async def object_history(
        self, object_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[Entry], int]:
        rows = await self.runner().rows(sql.SELECT_OBJECT_HISTORY, (object_id, limit, offset))
        total = await self._count(sql.COUNT_OBJECT_HISTORY, (object_id,))
        return [change_log.entry_from_row(row) for row in rows], total

    async def object_history_seqs(
        self, object_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[int], int]:
        rows = await self.runner().rows(sql.SELECT_OBJECT_HISTORY_SEQS, (object_id, limit, offset))
        total = await self._count(sql.COUNT_OBJECT_HISTORY, (object_id,))
        return [int(row[0]) for row in rows], total

    async def changes_by_seqs(self, seqs: Sequence[int]) -> list[Entry]:
        if not seqs:
            return []
        rows = await self.runner().rows(sql.in_list(sql.SELECT_CHANGES_BY_SEQS, len(seqs)), seqs)
        by_seq = {entry.seq: entry for entry in map(change_log.entry_from_row, rows)}
        return [by_seq[seq] for seq in seqs if seq in by_seq]

    async def object_as_of(self, object_id: bytes, time: int) -> Entry | None:
        row = await self._one(sql.SELECT_OBJECT_AS_OF, (object_id, time))
        return None if row is None else change_log.entry_from_row(row)

    async def object_next_after(self, object_id: bytes, time: int) -> Entry | None:
        row = await self._one(sql.SELECT_OBJECT_NEXT, (object_id, time))
        return None if row is None else change_log.entry_from_row(row)

    async def changes_after(self, after_seq: int, limit: int) -> list[Entry]:
        rows = await self.runner().rows(sql.SELECT_CHANGES_FROM, (after_seq, limit))
        return [change_log.entry_from_row(row) for row in rows]

    async def account_changes(
        self,
        account_id: bytes,
        live_mode: bool | None,
        where: EntryFilter,
        *,
        after_seq: int,
        limit: int,
    ) -> list[Entry]:
        statement, params = sql.account_changes_query(
            account_id, live_mode, where, after_seq, limit
        )
        return [
            change_log.entry_from_row(row) for row in await self.runner().rows(statement, params)
        ]

    async def account_change_seqs(
        self,
        account_id: bytes,
        live_mode: bool | None,
        where: EntryFilter,
        *,
        after_seq: int,
        through_seq: int | None,
        limit: int,
    ) -> list[int]:
        statement, params = sql.account_changes_query(
            account_id, live_mode, where, after_seq, limit, through_seq=through_seq,
            columns="seq",
        )  # fmt: skip
        return [int(row[0]) for row in await self.runner().rows(statement, params)]

    async def account_seq_after(self, account_id: bytes, after_seq: int, count: int) -> int | None:
        row = await self._one(sql.ACCOUNT_SEQ_AFTER, (account_id, after_seq, count - 1))
        return None if row is None else int(row[0])

    async def first_seq_at(self, time: int) -> int | None:
        row = await self._one(sql.FIRST_SEQ_AT, (time,))
        return None if row is None or row[0] is None else int(row[0])

    async def oldest_seq(self) -> int | None:
        row = await self._one(sql.OLDEST_SEQ)
        return None if row is None or row[0] is None else int(row[0])

    async def change_head(self) -> Head:
        row = await self._one(sql.SELECT_CHANGE_HEAD)
        assert row is not None  # made by migration 0007
        return change_log.head_from_row(row)

    async def prune_changes(self, before_time: int, batch: int) -> int:
        async def work(tx: SqlRunner) -> int:
            head = await tx.rows(sql.SELECT_CHANGE_HEAD)
            last_seq = int(head[0][0])
            oldest = await tx.rows(sql.SELECT_OLDEST_CHANGES, (batch,))
            # A run from the oldest only (time never goes back as seq grows), never the
            # newest entry: the chain's head stays an entry that can be checked.
            kept = 0
            for row in oldest:
                if int(row[1]) >= before_time or int(row[0]) >= last_seq:
                    break
                kept += 1
            if not kept:
                return 0
            seq, _, hash_ = oldest[kept - 1]
            await tx.run(sql.PRUNE_CHANGES, (int(seq),))
            await tx.run(sql.MOVE_PRUNED, (int(seq), bytes(hash_), int(seq)))
            return kept

        # A transaction of its own, not a write of a batch: it takes the head's row lock,
        # which a batch takes only at its end.
        async with self.transaction() as tx:
            return await work(tx)


async def _device_states(
    tx: SqlRunner, device_ids: list[bytes], *, lock: bool = False
) -> dict[bytes, tuple[Device, dict[bytes, str]]]:
    """The devices (any status) with their values, as the transaction sees them; `lock`:
    each device's row locked first, so that no other transaction writes it in between."""
    if not device_ids:
        return {}
    found: dict[bytes, tuple[Device, dict[bytes, str]]] = {}
    select = sql.LOCK_ANY_DEVICES_BY_IDS if lock else sql.SELECT_ANY_DEVICES_BY_IDS
    for batch in _batches(device_ids):
        for row in await tx.rows(sql.in_list(select, len(batch)), batch):
            device = sql.device_from_row(row)
            found[device.id] = (device, {})
        statement = sql.in_list(sql.SELECT_VALUES_OF, len(batch))
        for device_id, field_id, value in await tx.rows(statement, batch):
            found[bytes(device_id)][1][bytes(field_id)] = value
    return found


async def _revoke_of_device(tx: SqlRunner, device: Device, reason: str, now: int) -> list[Change]:
    rows = await tx.rows(sql.REVOKE_DEVICE_CERTIFICATES, (now, reason, device.id))
    return _revocations([sql.certificate_from_row(row) for row in rows], device.live_mode)


def _revocations(revoked: list[Certificate], live_mode: bool | None) -> list[Change]:
    return [
        changes.certificate(
            Action.CERTIFICATE_REVOKE,
            msgspec.structs.replace(cert, revoked_at=None, revocation_reason=None),
            cert,
            live_mode,
        )
        for cert in revoked
    ]


def _secret(row: Sequence[Any]) -> tuple[bytes, bytes, int, int]:
    return bytes(row[0]), bytes(row[1]), int(row[2]), int(row[3])


async def _revoke_secrets(tx: SqlRunner, device: Device, now: int) -> list[Change]:
    rows = await tx.rows(sql.REVOKE_ENROLLMENTS, (now, device.id, now))
    return [changes.secret(Action.SECRET_REVOKE, device, _secret(row), "revoked") for row in rows]


async def _add_to_count(
    tx: SqlRunner, account_id: bytes, live_mode: bool, device_id: bytes, change: int
) -> None:
    """Keep device_counts right in the transaction that inserts, deletes or restores the
    device (in a group-commit batch, once per row at its end: storage/batch.py)."""
    key = (account_id, live_mode, sql.count_slot(device_id))
    batch: Batch | None = getattr(tx, "batch", None)
    if batch is not None:
        batch.defer_count(key, change)
    else:
        await tx.run(sql.ADD_TO_DEVICE_COUNT, (*key, change))


def _batches(items: list[T]) -> list[list[T]]:
    return [items[start : start + BULK_ROWS] for start in range(0, len(items), BULK_ROWS)]


class _SqlDeviceImport:
    """DeviceImport on one open transaction: a statement per few hundred lookups or
    inserted rows, not one per row."""

    def __init__(
        self, tx: SqlRunner, insert_many: Callable[[SqlRunner, str, list[Params]], Awaitable[None]]
    ) -> None:
        self._tx = tx
        self._insert_many = insert_many

    async def taken_ids(self, ids: list[bytes]) -> set[bytes]:
        taken: set[bytes] = set()
        for batch in _batches(ids):
            statement = sql.in_list(sql.SELECT_TAKEN_IDS, len(batch))
            taken.update(bytes(row[0]) for row in await self._tx.rows(statement, batch))
        return taken

    async def taken_references(
        self, account_id: bytes, live_mode: bool, references: list[str]
    ) -> dict[str, bytes]:
        return await self._holders(sql.SELECT_TAKEN_REFERENCES, account_id, live_mode, references)

    async def taken_identifiers(
        self, division_id: bytes, live_mode: bool, identifiers: list[str]
    ) -> dict[str, bytes]:
        return await self._holders(
            sql.SELECT_TAKEN_IDENTIFIERS, division_id, live_mode, identifiers
        )

    async def _holders(
        self, statement: str, scope: bytes, live_mode: bool, values: list[str]
    ) -> dict[str, bytes]:
        holders: dict[str, bytes] = {}
        for batch in _batches(values):
            rows = await self._tx.rows(
                sql.values_list(statement, len(batch)), [scope, live_mode, *batch]
            )
            holders.update((row[0], bytes(row[1])) for row in rows if row[1] is not None)
        return holders

    async def count_devices(self, account_id: bytes, live_mode: bool) -> int:
        rows = await self._tx.rows(sql.SELECT_DEVICE_COUNT, (account_id, live_mode))
        return int(rows[0][0])

    async def insert_devices_bulk(
        self, devices: list[Device], field_values: list[tuple[bytes, bytes, str]], origin: Origin
    ) -> None:
        await self._insert_many(self._tx, sql.INSERT_DEVICE, [sql.device_row(d) for d in devices])
        values: dict[bytes, dict[bytes, str]] = {}
        for device_id, field_id, value in field_values:
            values.setdefault(device_id, {})[field_id] = value
        imported = [
            changes.created_device(Action.DEVICE_IMPORT, d, values.get(d.id, {})) for d in devices
        ]

        async def insert_many(statement: str, rows: list[Sequence[Any]]) -> None:
            await self._insert_many(self._tx, statement, rows)

        if field_values:
            await self._insert_many(self._tx, sql.INSERT_VALUE, list(field_values))
        added: Counter[tuple[bytes, bool, int]] = Counter(
            (d.account_id, d.live_mode, sql.count_slot(d.id)) for d in devices
        )
        # Every slot of the account, in order, from the first chunk on (0 where none): the
        # import holds them all before it takes the log's head, as a group-commit batch
        # takes them (storage/batch.py:seal), so the two cannot deadlock.
        for account_id, live_mode in {(key[0], key[1]) for key in added}:
            for slot in range(sql.COUNT_SLOTS):
                added[(account_id, live_mode, slot)] += 0
        for (account_id, live_mode, slot), count in sorted(added.items()):
            await self._tx.run(sql.ADD_TO_DEVICE_COUNT, (account_id, live_mode, slot, count))
        await change_log.append(self._tx, origin, imported, now_us(), insert_many)
