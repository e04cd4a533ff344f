"""Device rules shared by both dialects: identity, uniqueness, listing order, deletion."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from devreg.core.clock import now_us
from devreg.core.errors import Conflict, InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.records import Caller, Device, DeviceStatus
from devreg.core.store import DeviceStore, DuplicateValue

MAX_REFERENCE_ID = 255
MAX_PAGE = 100
DEFAULT_PAGE = 30
DUPLICATE_REFERENCE = "Reference ID already exists"


class DevicePage(msgspec.Struct, frozen=True):
    devices: list[Device]
    has_more: bool


def check_reference_id(value: str) -> str | None:
    """An empty reference means "none" (dialect F has no null for it); otherwise 1-255
    printable characters."""
    if value == "":
        return None
    if len(value) > MAX_REFERENCE_ID:
        raise InvalidInput(
            f"reference_id must be at most {MAX_REFERENCE_ID} characters", "reference_id"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput("reference_id must not contain control characters", "reference_id")
    return value


def _conflict(exc: DuplicateValue) -> Conflict:
    if exc.field == "reference_id":
        return Conflict(DUPLICATE_REFERENCE, "duplicate_reference")
    return Conflict(f"{exc.field} already exists", f"duplicate_{exc.field}")


class DeviceService:
    """The device use cases. Every rule about a device's lifecycle lives here, once."""

    def __init__(self, store: DeviceStore, clock: Callable[[], int] = now_us) -> None:
        self.store = store
        self.clock = clock

    async def create(self, caller: Caller, reference_id: str | None) -> Device:
        reference = check_reference_id(reference_id) if reference_id is not None else None
        profile = await self.store.default_profile(caller.account_id)
        if profile is None:  # every account is created with one; a missing one is corruption
            raise RuntimeError("account has no default device profile")
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
            await self.store.insert_device(device)
        except DuplicateValue as exc:
            raise _conflict(exc) from exc
        return device

    async def get(self, caller: Caller, device_id: bytes) -> Device:
        device = await self.store.get_device(caller.account_id, caller.live_mode, device_id)
        if device is None:
            raise NotFound("No such device")
        return device

    async def list(
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
            anchor = await self.store.get_device(
                caller.account_id, caller.live_mode, cursor_id, include_deleted=True
            )
            if anchor is None:
                raise InvalidInput(f"{field} names no device of this account", field)
            cursor = (anchor.created_at, anchor.id)
        newer = ending_before is not None
        found = await self.store.list_devices(
            caller.account_id,
            caller.live_mode,
            limit=limit + 1,
            reference_id=reference_id,
            cursor=cursor,
            direction="newer" if newer else "older",
        )
        has_more = len(found) > limit
        if has_more:
            # The extra row is the one farthest from the cursor: the newest when paging newer.
            found = found[1:] if newer else found[:limit]
        return DevicePage(devices=found, has_more=has_more)

    async def update(self, caller: Caller, device_id: bytes, changes: dict[str, object]) -> Device:
        """Partial update: only the columns named in `changes` are written."""
        checked = dict(changes)
        if "reference_id" in checked:
            value = checked["reference_id"]
            checked["reference_id"] = check_reference_id(value) if isinstance(value, str) else None
        if not checked:
            return await self.get(caller, device_id)
        try:
            device = await self.store.update_fields(
                caller.account_id, caller.live_mode, device_id, checked, self.clock()
            )
        except DuplicateValue as exc:
            raise _conflict(exc) from exc
        if device is None:
            raise NotFound("No such device")
        return device

    async def delete(self, caller: Caller, device_id: bytes) -> None:
        """Soft delete: the row stays (certificates point at it) but the device is gone
        from every read, and its reference_id and device_identifier are free again."""
        deleted = await self.store.update_fields(
            caller.account_id,
            caller.live_mode,
            device_id,
            {"status": DeviceStatus.DELETED},
            self.clock(),
        )
        if deleted is None:
            raise NotFound("No such device")
