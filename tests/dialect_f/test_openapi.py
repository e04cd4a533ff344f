"""Dialect F's part of /openapi.json: the reference rules it documents are the core's, and
its links lead from a made device to the operations on it."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from devreg.core.devices import MAX_REFERENCE_ID
from devreg.core.text import TEXT_PATTERN, first_forbidden
from devreg.dialect_f.openapi import paths
from devreg.dialect_f.shapes import DeviceCreate, DeviceUpdate


def reference_schema(shape: type) -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components([shape])
    schema: dict[str, Any] = components[shape.__name__]["properties"]["reference_id"]
    return schema


def test_reference_rules_are_documented() -> None:
    """devreg refuses references with control characters (400), which its own document
    allowed (only maxLength was there), so a 400 to seed 000's PATCH could not be told
    from an undocumented answer. The pattern documents the rule; the core still words the
    refusal, and negative fuzzing now sends such references."""
    for shape in (DeviceCreate, DeviceUpdate):
        schema = reference_schema(shape)
        assert schema["maxLength"] == MAX_REFERENCE_ID
        assert schema["pattern"] == TEXT_PATTERN
    pattern = re.compile(TEXT_PATTERN)
    for code in range(0x10000):  # the pattern is the core's rule on the BMP, made from it
        if 0xD800 <= code <= 0xDFFF:
            continue
        text = f"a{chr(code)}b"
        assert (pattern.fullmatch(text) is None) == (first_forbidden(text) is not None), hex(code)
    # Documented only: decoding accepts it, and the core refuses it in its own words.
    assert msgspec.json.decode(b'{"reference_id": "a\\nb"}', type=DeviceUpdate).reference_id


def test_list_parameters_are_documented_as_checked() -> None:
    """The cursors are device ids and the reference filter has no control characters (the
    list answers 400 otherwise): documented, so that generated listings are not mostly
    refusals, and refused ones are known to be invalid."""
    parameters = {p["name"]: p for p in paths()["/devices"]["get"]["parameters"]}
    device_id = paths()["/devices/{id}"]["parameters"][0]["schema"]
    assert parameters["starting_after"]["schema"] == device_id
    assert parameters["ending_before"]["schema"] == device_id
    assert parameters["reference_id"]["schema"]["pattern"] == TEXT_PATTERN


def test_links_from_a_made_device() -> None:
    created = paths()["/devices"]["post"]["responses"]["201"]["links"]
    assert {name: link["operationId"] for name, link in created.items()} == {
        "GetDevice": "get-device",
        "UpdateDevice": "update-device",
        "DeleteDevice": "delete-device",
        "ListOlderDevices": "list-devices",
        "FindByReference": "list-devices",
    }
    assert created["UpdateDevice"]["parameters"] == {"id": "$response.body#/id"}
    listed = paths()["/devices"]["get"]["responses"]["200"]["links"]
    assert listed["GetDevice"]["parameters"] == {"id": "$response.body#/data/0/id"}
