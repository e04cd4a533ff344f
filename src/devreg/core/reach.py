"""What a caller can reach: its account and mode, and, for an API key limited to some
divisions (and the bearer tokens made from it), only the devices, profiles, certificates
and divisions of those. Outside its reach a thing does not exist for the caller: the same
NotFound another account's would get, so a limited key cannot learn what else is there.

A device's division never changes (nor a certificate's device, nor a profile's division),
so a check made before a write cannot race with it. Lists filter in the query
(DeviceFilter.division_ids), never after the page is cut."""

from __future__ import annotations

from devreg.core.errors import Forbidden, NotFound
from devreg.core.records import Caller, Certificate, Device
from devreg.core.store import DeviceStore

NO_DEVICE = "No such device"
NO_CERTIFICATE = "Certificate does not exist"


def limited(caller: Caller) -> bool:
    return caller.divisions is not None


def sees_division(caller: Caller, division_id: bytes) -> bool:
    return caller.divisions is None or division_id in caller.divisions


def check_unlimited(caller: Caller, what: str) -> None:
    """For what a limited key may not do at all, because it would reach past its divisions
    (`what`: "create divisions", "read the account's audit log")."""
    if limited(caller):
        raise Forbidden(f"This API key is limited to some divisions: it cannot {what}")


def check_default_division(caller: Caller, division_id: bytes) -> None:
    """For what lands in the account's default division when the request names none."""
    if not sees_division(caller, division_id):
        raise Forbidden(
            "This API key is limited to divisions other than the account's default division,"
            " where this is made when no division or profile is named"
        )


def within(outer: frozenset[bytes] | None, inner: frozenset[bytes] | None) -> bool:
    """Whether a limit of `inner` reaches no further than one of `outer` (None: all)."""
    return outer is None or (inner is not None and inner <= outer)


async def reachable_device(
    store: DeviceStore, caller: Caller, device_id: bytes, *, include_deleted: bool = False
) -> Device:
    """The caller's device `device_id` (deleted ones too when asked), else NotFound."""
    device = await store.get_device(
        caller.account_id, caller.live_mode, device_id, include_deleted=include_deleted
    )
    if device is None or not sees_division(caller, device.division_id):
        raise NotFound(NO_DEVICE)
    return device


async def reachable_certificate(store: DeviceStore, caller: Caller, cert_id: bytes) -> Certificate:
    """The caller's certificate `cert_id` (of a deleted device too) whose device it reaches,
    else NotFound."""
    cert = await store.get_certificate(caller.account_id, caller.live_mode, cert_id)
    if cert is None:
        raise NotFound(NO_CERTIFICATE)
    try:
        await reachable_device(store, caller, cert.device_id, include_deleted=True)
    except NotFound:
        raise NotFound(NO_CERTIFICATE) from None
    return cert


async def check_device(store: DeviceStore, caller: Caller, device_id: bytes) -> None:
    """For writes that fetch nothing first: a limited caller's target must be in reach.
    Unlimited callers pay nothing (the write's own scoping answers NotFound)."""
    if limited(caller):
        await reachable_device(store, caller, device_id)


async def reaches_object(store: DeviceStore, caller: Caller, object_id: bytes) -> bool:
    """Whether `object_id` is a division, device (deleted too), profile or certificate of
    the caller's in its reach: what a limited key may read the change log of."""
    if not limited(caller):
        return True
    if sees_division(caller, object_id) and await store.get_division(caller.account_id, object_id):
        return True
    device = await store.get_device(
        caller.account_id, caller.live_mode, object_id, include_deleted=True
    )
    if device is not None:
        return sees_division(caller, device.division_id)
    try:
        await reachable_certificate(store, caller, object_id)
        return True
    except NotFound:  # no certificate of the caller's, or one out of reach
        pass
    profile = await store.get_profile(caller.account_id, object_id)
    return profile is not None and sees_division(caller, profile.division_id)
