"""The storage interface the core uses. SqliteDeviceStore and PostgresDeviceStore implement it."""

from __future__ import annotations

from typing import Literal, Protocol

from devreg.core.errors import Unavailable
from devreg.core.records import Account, ApiKey, Device, DeviceProfile, Division

# Columns of a device that `update_fields` may set; anything else is a programming error.
UPDATABLE_DEVICE_COLUMNS = frozenset(
    {"reference_id", "device_identifier", "status", "allow_read", "allow_write", "allow_renew"}
)

ListDirection = Literal["older", "newer"]


class DuplicateValue(Exception):
    """A unique index refused a write; `field` is the record field that collided."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class StoreUnavailable(Unavailable):
    """The database cannot be reached (connection refused, server restarting)."""


class DeviceStore(Protocol):
    async def ping(self) -> None:
        """Raises StoreUnavailable when the database cannot answer."""

    async def create_account(
        self, account: Account, keys: list[ApiKey], division: Division, profile: DeviceProfile
    ) -> None: ...

    async def find_api_key(self, key_hash: bytes) -> ApiKey | None: ...

    async def default_profile(self, account_id: bytes) -> DeviceProfile | None: ...

    async def insert_device(self, device: Device) -> None:
        """Raises DuplicateValue when reference_id or device_identifier is taken."""

    async def get_device(
        self, account_id: bytes, live_mode: bool, device_id: bytes, *, include_deleted: bool = False
    ) -> Device | None: ...

    async def list_devices(
        self,
        account_id: bytes,
        live_mode: bool,
        *,
        limit: int,
        reference_id: str | None = None,
        cursor: tuple[int, bytes] | None = None,
        direction: ListDirection = "older",
    ) -> list[Device]:
        """Non-deleted devices, newest first. With a cursor (created_at, id), only those
        older (or newer) than it; the result is always ordered newest first."""

    async def update_fields(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        changes: dict[str, object],
        now: int,
    ) -> Device | None:
        """Set `changes` on a non-deleted device, bump its version and updated_at, and
        return the new record (None when there is no such device). Raises DuplicateValue."""

    async def close(self) -> None: ...
