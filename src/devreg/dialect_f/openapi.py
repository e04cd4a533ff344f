"""Dialect F's part of `/openapi.json`, built from the same Structs that decode requests."""

from __future__ import annotations

from typing import Any

from devreg.core.quotas import DEVICES_SETTING
from devreg.core.store import STORAGE_FULL_RETRY_AFTER
from devreg.core.text import TEXT_PATTERN, TEXT_RULE
from devreg.core.versions import SERVED
from devreg.dialect_f.shapes import (
    Accepted,
    DeviceCreate,
    DeviceList,
    DeviceOut,
    DeviceUpdate,
    ErrorOut,
    LoginOut,
)

SHAPES: tuple[type, ...] = (
    DeviceCreate,
    DeviceUpdate,
    DeviceOut,
    DeviceList,
    LoginOut,
    Accepted,
    ErrorOut,
)

_ERRORS = {
    "400": "Malformed input, or the Authorization header given twice: the message names"
    " the bad part",
    "403": "Missing, malformed, expired or forged credentials (seed 000 has no 401)",
    "404": "No such device in this account and mode",
    "409": "reference_id already taken (code duplicate_reference), or (POST /devices) the"
    f" account is at its device quota ({DEVICES_SETTING}; code quota_exceeded)",
    "413": "Request body over 1 MiB",
    "415": "Content-Type is not application/json",
    "422": "Flatpeak-Version not served, or older than the account's default (code"
    " api_version_not_supported, context api)",
    "429": "Over the credential's rate limit; see Retry-After",
    "507": "insufficient_storage: the database is out of disk space and nothing was written;"
    f" retry after Retry-After ({STORAGE_FULL_RETRY_AFTER} s)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(
    ok: str,
    schema: str,
    description: str,
    errors: list[str],
    links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses = {ok: _json(_ref(schema), description)}
    if links:
        responses[ok]["links"] = links
    for status in ["400", "403", "422", "429", *errors]:  # 400: Authorization given twice
        responses[status] = _json(_ref("ErrorOut"), _ERRORS[status])
    return responses


_VERSION_HEADER = {
    "in": "header",
    "name": "Flatpeak-Version",
    "required": False,
    "schema": {"type": "string", "enum": list(SERVED)},
    "description": "The API version to answer in; the account's default when absent. One"
    " older than the default is refused. Every answer names the version used in its own"
    " Flatpeak-Version header.",
}
_DEVICE_ID = {
    "in": "path",
    "name": "id",
    "required": True,
    "schema": {"type": "string", "pattern": "^dev_[0-9a-f]{32}$"},
    "description": "Device id (`dev_` + 32 hex digits).",
}
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where a response's values go next (clients and stateful fuzzers
    follow them)."""
    return {"operationId": operation_id, "description": description, "parameters": parameters}


def _device_links(id_expression: str) -> dict[str, Any]:
    return {
        "GetDevice": _link("get-device", "Read the device", id=id_expression),
        "UpdateDevice": _link("update-device", "Update the device", id=id_expression),
        "DeleteDevice": _link("delete-device", "Delete the device", id=id_expression),
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": _ref(schema)}}}


def paths() -> dict[str, Any]:
    list_params = [
        _VERSION_HEADER,
        {
            "in": "query",
            "name": "limit",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 30},
        },
        {
            "in": "query",
            "name": "starting_after",
            "schema": _DEVICE_ID["schema"],
            "description": "A device id: the page of devices older than it. Not together"
            " with ending_before.",
        },
        {
            "in": "query",
            "name": "ending_before",
            "schema": _DEVICE_ID["schema"],
            "description": "A device id: the page of devices newer than it. Not together"
            " with starting_after.",
        },
        {
            "in": "query",
            "name": "reference_id",
            "schema": {"type": "string", "pattern": TEXT_PATTERN},
            "description": "Only the device with this reference (empty: any), compared in"
            f" NFC. The reference rule applies: {TEXT_RULE}",
        },
    ]
    return {
        "/login": {
            "get": {
                "tags": ["Login"],
                "operationId": "login",
                "summary": "Exchange an API key for a token",
                "description": "HTTP Basic `account_id:api_key`. The key's mode (live/test) is the"
                " token's mode.",
                "security": [{"basicAuth": []}],
                "parameters": [_VERSION_HEADER],
                "responses": _responses("200", "LoginOut", "A bearer token valid for an hour", []),
            }
        },
        "/devices": {
            "post": {
                "tags": ["Devices"],
                "operationId": "create-device",
                "summary": "Create a device",
                "security": _BEARER,
                "parameters": [_VERSION_HEADER],
                "requestBody": _body("DeviceCreate"),
                "responses": _responses(
                    "201",
                    "DeviceOut",
                    "The new device",
                    ["400", "409", "413", "415", "507"],
                    {
                        **_device_links("$response.body#/id"),
                        "ListOlderDevices": _link(
                            "list-devices",
                            "The devices created before it",
                            starting_after="$response.body#/id",
                        ),
                        "FindByReference": _link(
                            "list-devices",
                            "Find it by its reference",
                            reference_id="$response.body#/reference_id",
                        ),
                    },
                ),
            },
            "get": {
                "tags": ["Devices"],
                "operationId": "list-devices",
                "summary": "List devices, newest first",
                "security": _BEARER,
                "parameters": list_params,
                "responses": _responses(
                    "200",
                    "DeviceList",
                    "A page of devices",
                    ["400"],
                    {
                        **_device_links("$response.body#/data/0/id"),
                        "ListNewerDevices": _link(
                            "list-devices",
                            "The devices created after the page's newest",
                            ending_before="$response.body#/data/0/id",
                        ),
                    },
                ),
            },
        },
        "/devices/{id}": {
            "parameters": [_DEVICE_ID],
            "get": {
                "tags": ["Devices"],
                "operationId": "get-device",
                "summary": "Get a device",
                "security": _BEARER,
                "parameters": [_VERSION_HEADER],
                "responses": _responses("200", "DeviceOut", "The device", ["404"]),
            },
            "patch": {
                "tags": ["Devices"],
                "operationId": "update-device",
                "summary": "Update a device",
                "description": "Any parameters that have not been provided are left unchanged.",
                "security": _BEARER,
                "parameters": [_VERSION_HEADER],
                "requestBody": _body("DeviceUpdate"),
                "responses": _responses(
                    "200",
                    "DeviceOut",
                    "The updated device",
                    ["400", "404", "409", "413", "415", "507"],
                    _device_links("$response.body#/id"),
                ),
            },
            "delete": {
                "tags": ["Devices"],
                "operationId": "delete-device",
                "summary": "Delete a device",
                "security": _BEARER,
                "parameters": [_VERSION_HEADER],
                "responses": _responses("202", "Accepted", "Deleted", ["404", "507"]),
            },
        },
    }


SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "username: account id (`acc_...`), password: API key",
    },
}
