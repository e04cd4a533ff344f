"""Origins and callers for tests that call the core or the store directly."""

from __future__ import annotations

from devreg.changelog.entries import Action
from devreg.core.ids import render_uuid
from devreg.core.records import (
    Actor,
    ActorKind,
    Caller,
    Device,
    DeviceStatus,
    Origin,
    operator_origin,
)
from devreg.core.store import DeviceChange, DeviceStore

# Changes a test makes at the store: logged as an operator's command.
TEST_ORIGIN: Origin = operator_origin("test", "req_test")


def api_caller(account_id: bytes, live_mode: bool = True, key_id: bytes = bytes(16)) -> Caller:
    """A back office calling with an API key (dialect D's x-api-key)."""
    return Caller(
        account_id=account_id,
        live_mode=live_mode,
        credential_id="key:" + key_id.hex(),
        actor=Actor(ActorKind.API_KEY, render_uuid(key_id)),
        request_id="req_test",
    )


def device_caller(device: Device, certificate_id: bytes = bytes(16)) -> Caller:
    """The device itself, over client authentication with one of its certificates (what
    `core/access.py:authenticate_device` makes)."""
    return Caller(
        account_id=device.account_id,
        live_mode=device.live_mode,
        credential_id="cert:" + certificate_id.hex(),
        actor=Actor(ActorKind.DEVICE_CERTIFICATE, render_uuid(certificate_id)),
        request_id="req_test",
        device=device,
    )


async def delete_at_store(
    store: DeviceStore, account_id: bytes, live_mode: bool, device_id: bytes, now: int
) -> Device | None:
    """A device deleted straight at the store, as `DeviceService.delete` asks for it (without
    the revocation), logged as the test's operator."""
    return await store.update_device(
        account_id, live_mode, device_id, DeviceChange(status=DeviceStatus.DELETED), now,
        TEST_ORIGIN, Action.DEVICE_DELETE,
    )  # fmt: skip
