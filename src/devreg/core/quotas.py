"""Per-account quotas: how many devices (per mode), device profiles and divisions one
account may hold. One rule for every way in (dialect F, dialect D, bulk import)."""

from __future__ import annotations

import msgspec

from devreg.core.errors import QuotaExceeded

# Generous for real fleets; they bound what one API key can make the database hold.
DEFAULT_MAX_DEVICES = 1_000_000
DEFAULT_MAX_PROFILES = 1_000
DEFAULT_MAX_DIVISIONS = 1_000
DEVICES_SETTING = "DEVREG_MAX_DEVICES"
PROFILES_SETTING = "DEVREG_MAX_PROFILES"
DIVISIONS_SETTING = "DEVREG_MAX_DIVISIONS"


class Quotas(msgspec.Struct, frozen=True):
    devices: int = DEFAULT_MAX_DEVICES  # non-deleted devices, per account and mode
    profiles: int = DEFAULT_MAX_PROFILES  # device profiles per account (both modes share them)
    divisions: int = DEFAULT_MAX_DIVISIONS  # divisions per account, the default one included


DEFAULT_QUOTAS = Quotas()


def check_devices(quotas: Quotas, held: int, adding: int = 1) -> None:
    """Refuse `adding` devices to a mode of an account that holds `held` (deleted devices
    do not count)."""
    if held + adding > quotas.devices:
        raise QuotaExceeded(
            f"This account may hold at most {quotas.devices} devices in this mode (it has"
            f" {held}); delete some first",
            DEVICES_SETTING,
        )


def check_profiles(quotas: Quotas, held: int) -> None:
    if held >= quotas.profiles:
        raise QuotaExceeded(
            f"This account may hold at most {quotas.profiles} device profiles", PROFILES_SETTING
        )


def check_divisions(quotas: Quotas, held: int) -> None:
    if held >= quotas.divisions:
        raise QuotaExceeded(
            f"This account may hold at most {quotas.divisions} divisions", DIVISIONS_SETTING
        )
