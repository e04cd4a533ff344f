"""Wire shapes of dialect F, field for field as seed 000 documents them.

These Structs both decode requests (strictly: unknown fields and wrong types are refused)
and generate the OpenAPI document, so the spec cannot drift from the code.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from devreg.core.clock import render_rfc3339
from devreg.core.devices import MAX_REFERENCE_ID
from devreg.core.records import Device
from devreg.core.text import TEXT_PATTERN, TEXT_RULE

# TEXT_PATTERN: the text rule of the core (which refuses, naming the fault), documented in
# the schema only, so that the answer keeps the core's message.
ReferenceId = Annotated[
    str,
    Meta(
        max_length=MAX_REFERENCE_ID,
        description="A reference that is meaningful to you, for example, an ID from your"
        " system. Unique among your devices of one mode; an empty string clears it. At most"
        f" {MAX_REFERENCE_ID} characters. {TEXT_RULE}",
        examples=["DEV1234567890"],
        extra_json_schema={"pattern": TEXT_PATTERN},
    ),
]
Timestamp = Annotated[str, Meta(description="RFC 3339, UTC", examples=["2022-01-24T14:15:22Z"])]


class DeviceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Creates a device."""

    reference_id: ReferenceId | UnsetType = UNSET


class DeviceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Updates a device. Any parameters that have not been provided are left unchanged."""

    reference_id: ReferenceId | UnsetType = UNSET


class DeviceOut(msgspec.Struct, omit_defaults=True):
    """This object represents a device or another asset of a compatible type."""

    id: Annotated[str, Meta(examples=["dev_63a6087272941ef077a8fd3e"])]
    object: Literal["device"]
    live_mode: bool
    reference_id: Annotated[str, Meta(description="Empty when the device has none.")]
    time_created: Timestamp
    account_id: Annotated[str, Meta(examples=["acc_661677911f2197045e6cf1b1"])]
    last_seen: Annotated[
        Timestamp | UnsetType,
        Meta(description="When the device last called the service; absent if never."),
    ] = UNSET


class DeviceList(msgspec.Struct):
    object: Literal["list"]
    url: Literal["/devices"]
    has_more: bool
    data: list[DeviceOut]


class LoginOut(msgspec.Struct):
    bearer_token: str
    expires_in: int
    live_mode: bool


class Accepted(msgspec.Struct):
    message: Literal["Accepted"]


class ErrorOut(msgspec.Struct):
    object: Literal["error"]
    live_mode: Annotated[
        bool, Meta(description="The caller's mode; false when no valid credential was shown.")
    ]
    context: Annotated[
        str,
        Meta(
            description="Where it failed: the endpoint (`api.device_update`), or `api` for an"
            " unknown path, a wrong method or a version error.",
            examples=["api.device_update"],
        ),
    ]
    type: Annotated[str, Meta(examples=["invalid_request"])]
    code: Annotated[str, Meta(examples=["access_denied"])]
    message: str
    time_created: Timestamp


def render_device(device: Device) -> DeviceOut:
    return DeviceOut(
        id="dev_" + device.id.hex(),
        object="device",
        live_mode=device.live_mode,
        reference_id=device.reference_id or "",
        time_created=render_rfc3339(device.created_at),
        account_id="acc_" + device.account_id.hex(),
        last_seen=UNSET if device.last_seen is None else render_rfc3339(device.last_seen),
    )
