"""Dialect D's devices over HTTP with `x-api-key`, against seed 003: the device shape,
the destructive PUT answered 201, 400 entity_not_found for an unknown id, and refusals that
change nothing (checked by reading the device back)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.dialect_d.helpers import (
    FLAGS,
    Account,
    all_devices,
    assert_errors,
    assert_no_such_device,
    check_device,
    d_client,
    field_ids,
    get_device,
    list_devices,
    make_device,
    make_division,
    make_profile,
    parse_time,
    values_of,
)

SEED_FIELDS = (("Mandatory Field", True), ("Optional Field", False))


class Seeded:
    """Seed 003's example world: a division, a profile with one mandatory and one optional
    field, and a device with both values."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.division = make_division(account.live, "Mock Division 1")
        self.profile = make_profile(
            account.live, "Device Profile", division_id=self.division["id"], fields=SEED_FIELDS
        )
        self.ids = field_ids(self.profile)
        self.mandatory = self.ids["Mandatory Field"]
        self.optional = self.ids["Optional Field"]
        self.device = make_device(
            account.live,
            "Old Device",
            self.profile,
            {"Mandatory Field": "mandatory value", "Optional Field": "optional value"},
        )
        self.path = f"/device/{self.device['id']}"
        self.foreign = ""  # a field of another profile, when a test needs one


@pytest.fixture
def seeded(account: Account) -> Seeded:
    return Seeded(account)


# --- create -------------------------------------------------------------------------------------


def test_post_device_is_201_in_seed_003s_shape(account: Account) -> None:
    division = make_division(account.live, "Mock Division 1")
    profile = make_profile(
        account.live,
        "Device Profile",
        division_id=division["id"],
        fields=SEED_FIELDS,
        device_api_allow_renew_certificate=False,
    )
    ids = field_ids(profile)
    response = account.live.post(
        "/device",
        json={
            "division_id": division["id"],
            "device_identifier": "New Device",
            "device_profile_id": profile["id"],
            # Given in the other order: the profile's order decides the answer's.
            "fields": [
                {"id": ids["Optional Field"], "value": "optional value"},
                {"id": ids["Mandatory Field"], "value": "mandatory value"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    body = check_device(response.json())
    assert body["account_id"] == account.uuid
    assert body["division"] == division
    assert body["device_identifier"] == "New Device"
    assert body["device_profile"] == {"id": profile["id"], "name": "Device Profile"}
    assert body["created"] == body["updated"]
    assert body["status"] == "ACTIVE"
    assert body["fields"] == [
        {
            "id": ids["Mandatory Field"],
            "name": "Mandatory Field",
            "value": "mandatory value",
            "mandatory": True,
        },
        {
            "id": ids["Optional Field"],
            "name": "Optional Field",
            "value": "optional value",
            "mandatory": False,
        },
    ]
    # The flags come from the profile.
    assert [body[flag] for flag in FLAGS] == [True, True, False]
    assert body["last_seen"] is None
    assert get_device(account.live, body["id"]) == body


def test_post_device_with_only_an_identifier_takes_the_defaults(account: Account) -> None:
    body = make_device(account.live, "thermostat")
    assert body["division"]["name"] == "Default"
    assert body["device_profile"]["name"] == "Default"
    assert body["fields"] == []
    assert [body[flag] for flag in FLAGS] == [True, True, True]
    # The profile alone is enough: its division is the device's.
    seeded = Seeded(account)
    response = account.live.post(
        "/device",
        json={
            "device_identifier": "by profile",
            "device_profile_id": seeded.profile["id"],
            "fields": [{"id": seeded.mandatory, "value": "m"}],
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["division"] == seeded.division


def test_identifier_is_unique_per_division_until_deleted(seeded: Seeded) -> None:
    client = seeded.account.live
    response = client.post(
        "/device",
        json={
            "device_identifier": "Old Device",
            "device_profile_id": seeded.profile["id"],
            "fields": [{"id": seeded.mandatory, "value": "x"}],
        },
    )
    division = seeded.profile["division"]["id"]
    assert_errors(response, 400, "invalid_input", mentions=[
        f"Device with division {division} and identifier Old Device already exists"
    ])  # fmt: skip
    assert [d["id"] for d in all_devices(client)] == [seeded.device["id"]]
    # Free in another division, and in test mode.
    elsewhere = make_device(client, "Old Device")
    assert elsewhere["division"]["name"] == "Default"
    test_profile = seeded.profile  # profiles are per account, shared by both modes
    in_test = make_device(seeded.account.test, "Old Device", test_profile, {"Mandatory Field": "t"})
    assert in_test["division"] == seeded.division
    # Free again once deleted.
    assert client.delete(seeded.path).status_code == 200
    again = make_device(client, "Old Device", seeded.profile, {"Mandatory Field": "again"})
    assert again["id"] != seeded.device["id"]


def test_division_that_is_not_the_profiles_is_refused(seeded: Seeded) -> None:
    client = seeded.account.live
    default_division = make_device(client, "probe")["division"]
    response = client.post(
        "/device",
        json={
            "device_identifier": "x",
            "division_id": default_division["id"],
            "device_profile_id": seeded.profile["id"],
            "fields": [{"id": seeded.mandatory, "value": "v"}],
        },
    )
    assert_errors(response, 400, "invalid_input", mentions=["division"])
    assert len(all_devices(client)) == 2


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        (
            lambda s: [{"id": s.mandatory, "value": "m"}, {"id": str(uuid.uuid4()), "value": "x"}],
            ["fields[1]", "not a field"],
        ),
        (lambda s: [{"id": s.optional, "value": "o"}], ["mandatory", "Mandatory Field"]),
        (lambda s: [{"id": s.mandatory, "value": ""}], ["mandatory", "Mandatory Field"]),
        (
            lambda s: [{"id": s.mandatory, "value": "a"}, {"id": s.mandatory, "value": "b"}],
            ["Mandatory Field", "more than once"],
        ),
        (
            lambda s: [{"id": s.mandatory, "value": "m"}, {"id": s.optional, "value": "o" * 1025}],
            ["1024"],
        ),
        (lambda s: [{"id": "417c328e", "value": "m"}], ["fields[0].id", "UUID"]),
        (lambda s: [{"id": s.mandatory, "value": 5}], ["value"]),
        (lambda s: [{"id": s.mandatory}], ["value"]),
        (lambda s: [{"id": s.mandatory, "value": "m", "name": "x"}], ["name"]),
        (lambda s: [{"id": s.mandatory, "value": "a\u0000b"}], ["NUL"]),
    ],
    ids=[
        "unknown field id",
        "mandatory missing",
        "mandatory empty",
        "field twice",
        "value over 1024",
        "field id not a uuid",
        "value not a string",
        "value missing",
        "field name given",
        "NUL in value",
    ],
)
def test_bad_fields_on_post_are_400_and_write_nothing(
    seeded: Seeded, fields: Any, mentions: list[str]
) -> None:
    client = seeded.account.live
    response = client.post(
        "/device",
        json={
            "device_identifier": "new one",
            "device_profile_id": seeded.profile["id"],
            "fields": fields(seeded),
        },
    )
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert all_devices(client) == [get_device(client, seeded.device["id"])]


def test_value_of_exactly_1024_characters_is_kept(seeded: Seeded) -> None:
    value = "ü" * 1024
    device = make_device(seeded.account.live, "long", seeded.profile, {"Mandatory Field": value})
    assert values_of(device) == {"Mandatory Field": value}
    assert values_of(get_device(seeded.account.live, device["id"])) == {"Mandatory Field": value}


@pytest.mark.parametrize(
    ("identifier", "mentions"),
    [
        ("", ["device_identifier"]),
        ("   ", ["device_identifier", "empty"]),
        ("x" * 256, ["device_identifier", "255"]),
        ("a\nb", ["device_identifier", "control"]),
        (None, ["device_identifier"]),
        (12, ["device_identifier"]),
    ],
    ids=["empty", "blank", "256 chars", "newline", "null", "number"],
)
def test_bad_identifier_on_post_is_400(
    shared: Account, identifier: Any, mentions: list[str]
) -> None:
    before = all_devices(shared.live)
    response = shared.live.post("/device", json={"device_identifier": identifier})
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert all_devices(shared.live) == before


def test_identifier_of_255_characters_is_kept(account: Account) -> None:
    identifier = "☃" * 255
    device = make_device(account.live, identifier)
    assert get_device(account.live, device["id"])["device_identifier"] == identifier


# --- read and list ----------------------------------------------------------------------------


def test_list_defaults_to_20_oldest_first_with_offset_and_total(account: Account) -> None:
    made = [make_device(account.live, f"device {i:02}") for i in range(23)]
    page = list_devices(account.live)
    assert (page["limit"], page["offset"], page["total"]) == (20, 0, 23)
    assert page["records"] == made[:20]
    page = list_devices(account.live, offset=20)
    assert (page["limit"], page["offset"], page["total"]) == (20, 20, 23)
    assert page["records"] == made[20:]
    page = list_devices(account.live, limit=5, offset=3)
    assert (page["limit"], page["offset"], page["total"]) == (5, 3, 23)
    assert page["records"] == made[3:8]
    assert list_devices(account.live, limit=5, offset=100)["records"] == []
    assert list_devices(account.live, limit=1000)["records"] == made


def test_list_filters(seeded: Seeded) -> None:
    client = seeded.account.live
    other_profile = make_profile(
        client, "Other", division_id=seeded.division["id"], fields=[("x", False)]
    )
    plain = make_device(client, "Old Device")  # same identifier, default division
    other = make_device(client, "third", other_profile, {})
    old = get_device(client, seeded.device["id"])

    def ids(**params: Any) -> list[str]:
        page = list_devices(client, **params)
        assert page["total"] == len(page["records"])
        return [d["id"] for d in page["records"]]

    assert ids() == [old["id"], plain["id"], other["id"]]
    assert ids(device_identifier="Old Device") == [old["id"], plain["id"]]
    assert ids(device_identifier="old device") == []
    assert ids(division_id=seeded.division["id"]) == [old["id"], other["id"]]
    assert ids(division_id=plain["division"]["id"]) == [plain["id"]]
    assert ids(device_profile_id=other_profile["id"]) == [other["id"]]
    assert ids(device_identifier="Old Device", division_id=seeded.division["id"]) == [old["id"]]
    assert ids(device_profile_id=str(uuid.uuid4())) == []
    # Time filters: dates (whole UTC days, inclusive) and date-times.
    day = parse_time(old["created"]).date()
    everyone = [old["id"], plain["id"], other["id"]]
    # (the next day too, should the test run across midnight UTC)
    next_day = (day + timedelta(days=1)).isoformat()
    assert ids(created_from=day.isoformat(), created_to=next_day) == everyone
    assert ids(created_to=(day - timedelta(days=1)).isoformat()) == []
    assert ids(created_from=(day + timedelta(days=1)).isoformat()) == []
    assert ids(updated_from="2020-04-22T07:13:20Z", updated_to="2999-01-01T00:00:00+02:00") == (
        everyone
    )
    assert ids(updated_to="2020-04-24T09:23:21Z") == []
    assert ids(updated_from="2999-01-01T00:00:00") == []


def test_list_and_get_show_test_and_live_devices_apart(account: Account) -> None:
    live = make_device(account.live, "same name")
    test = make_device(account.test, "same name")
    assert all_devices(account.live) == [live]
    assert all_devices(account.test) == [test]
    assert_no_such_device(account.test.get(f"/device/{live['id']}"), live["id"])
    assert_no_such_device(account.live.get(f"/device/{test['id']}"), test["id"])
    response = account.test.put(f"/device/{live['id']}", json={"device_identifier": "taken over"})
    assert_no_such_device(response, live["id"])
    assert_no_such_device(account.test.delete(f"/device/{live['id']}"), live["id"])
    assert_no_such_device(account.test.put(f"/device/{live['id']}/disable"), live["id"])
    assert get_device(account.live, live["id"]) == live


def test_other_account_sees_entity_not_found_everywhere(seeded: Seeded, other: Account) -> None:
    device_id = seeded.device["id"]
    path = seeded.path
    for response in (
        other.live.get(path),
        other.live.put(path, json={"device_identifier": "mine now"}),
        other.live.delete(path),
        other.live.put(f"{path}/disable"),
        other.live.put(f"{path}/enable"),
        other.live.get(f"{path}/certificate"),
        other.live.post(f"{path}/certificate", json={"generate_key": True}),
    ):
        assert_no_such_device(response, device_id)
    assert all_devices(other.live) == []
    # Their profile or division cannot be used for a device of ours either.
    response = other.live.post(
        "/device", json={"device_identifier": "x", "device_profile_id": seeded.profile["id"]}
    )
    assert_errors(response, 400, "entity_not_found", mentions=["profile"])
    response = other.live.post(
        "/device", json={"device_identifier": "x", "division_id": seeded.division["id"]}
    )
    assert_errors(response, 400, "entity_not_found", mentions=["division"])
    assert all_devices(other.live) == []
    assert get_device(seeded.account.live, device_id) == seeded.device
    certificates = seeded.account.live.get(f"{path}/certificate")
    assert certificates.json() == {"limit": 20, "offset": 0, "total": 0, "records": []}


# --- update (PUT) -----------------------------------------------------------------------------


def test_put_as_in_seed_003_is_201_with_the_updated_device(seeded: Seeded) -> None:
    client = seeded.account.live
    response = client.put(
        seeded.path,
        json={
            "device_identifier": "New Device",
            "fields": [
                {"id": seeded.mandatory, "value": "updated mandatory value"},
                {"id": seeded.optional, "value": "updated optional value"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    body = check_device(response.json())
    before = seeded.device
    assert body["id"] == before["id"]
    assert body["account_id"] == before["account_id"] == seeded.account.uuid
    assert body["division"] == before["division"]
    assert body["device_profile"] == before["device_profile"]
    assert body["device_identifier"] == "New Device"
    assert body["created"] == before["created"]
    assert parse_time(body["updated"]) >= parse_time(before["updated"])
    assert body["status"] == "ACTIVE"
    assert body["fields"] == [
        {
            "id": seeded.mandatory,
            "name": "Mandatory Field",
            "value": "updated mandatory value",
            "mandatory": True,
        },
        {
            "id": seeded.optional,
            "name": "Optional Field",
            "value": "updated optional value",
            "mandatory": False,
        },
    ]
    assert [body[flag] for flag in FLAGS] == [True, True, True]
    assert get_device(client, before["id"]) == body


def test_put_is_destructive_to_fields_and_keeps_the_identifier_when_omitted(
    seeded: Seeded,
) -> None:
    client = seeded.account.live
    response = client.put(seeded.path, json={"fields": [{"id": seeded.mandatory, "value": "only"}]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["device_identifier"] == "Old Device"
    assert values_of(body) == {"Mandatory Field": "only"}
    assert get_device(client, seeded.device["id"]) == body


def test_put_without_fields_deletes_every_value(account: Account) -> None:
    profile = make_profile(account.live, "All optional", fields=[("a", False), ("b", False)])
    device = make_device(account.live, "dev", profile, {"a": "1", "b": "2"})
    response = account.live.put(f"/device/{device['id']}", json={})
    assert response.status_code == 201, response.text
    assert response.json()["fields"] == []
    assert get_device(account.live, device["id"])["fields"] == []


def test_put_sets_only_the_flags_given(seeded: Seeded) -> None:
    client = seeded.account.live
    keep = {"fields": [{"id": seeded.mandatory, "value": "m"}]}
    response = client.put(seeded.path, json={**keep, "device_api_allow_write": False})
    assert response.status_code == 201, response.text
    assert [response.json()[flag] for flag in FLAGS] == [True, False, True]
    response = client.put(
        seeded.path,
        json={**keep, "device_api_allow_read": False, "device_api_allow_renew_certificate": False},
    )
    assert [response.json()[flag] for flag in FLAGS] == [False, False, False]
    response = client.put(seeded.path, json=keep)  # flags not given: unchanged
    assert [response.json()[flag] for flag in FLAGS] == [False, False, False]
    response = client.put(seeded.path, json={**keep, "device_api_allow_write": True})
    assert [response.json()[flag] for flag in FLAGS] == [False, True, False]
    assert [get_device(client, seeded.device["id"])[flag] for flag in FLAGS] == [False, True, False]
    # The profile's defaults are untouched.
    assert [seeded.profile[flag] for flag in FLAGS] == [True, True, True]


def test_put_of_unknown_device_is_seed_003s_400(account: Account) -> None:
    unknown = str(uuid.uuid4())
    response = account.live.put(f"/device/{unknown}", json={"device_identifier": "x"})
    assert_no_such_device(response, unknown)
    assert_no_such_device(account.live.put("/device/64c02969", json={}), "64c02969")
    assert all_devices(account.live) == []


PUT_REFUSALS = [
    # (id, body made from the Seeded world, words the message must contain)
    ("unknown field id",
     lambda s: {"fields": [{"id": s.mandatory, "value": "m"},
                           {"id": str(uuid.uuid4()), "value": "x"}]},
     ["fields[1]", "not a field"]),
    ("field of another profile",
     lambda s: {"fields": [{"id": s.mandatory, "value": "m"}, {"id": s.foreign, "value": "x"}]},
     ["fields[1]", "not a field"]),
    ("mandatory missing",
     lambda s: {"device_identifier": "renamed", "fields": [{"id": s.optional, "value": "o"}]},
     ["mandatory", "Mandatory Field"]),
    ("mandatory empty", lambda s: {"fields": [{"id": s.mandatory, "value": ""}]},
     ["mandatory", "Mandatory Field"]),
    ("no fields at all", lambda s: {"device_identifier": "renamed"}, ["Mandatory Field"]),
    ("value over 1024",
     lambda s: {"fields": [{"id": s.mandatory, "value": "m" * 1025}]}, ["1024"]),
    ("field twice",
     lambda s: {"fields": [{"id": s.mandatory, "value": "a"}, {"id": s.mandatory, "value": "b"}]},
     ["more than once"]),
    ("identifier taken",
     lambda s: {"device_identifier": "Taken", "fields": [{"id": s.mandatory, "value": "m"}]},
     ["identifier Taken already exists"]),
    ("identifier too long",
     lambda s: {"device_identifier": "x" * 256, "fields": [{"id": s.mandatory, "value": "m"}]},
     ["device_identifier", "255"]),
    ("identifier control char",
     lambda s: {"device_identifier": "a\rb", "fields": [{"id": s.mandatory, "value": "m"}]},
     ["device_identifier", "control"]),
    ("identifier empty",
     lambda s: {"device_identifier": "", "fields": [{"id": s.mandatory, "value": "m"}]},
     ["device_identifier"]),
    ("identifier null", lambda s: {"device_identifier": None}, ["device_identifier"]),
    ("flag not bool",
     lambda s: {"device_api_allow_read": "false", "fields": [{"id": s.mandatory, "value": "m"}]},
     ["device_api_allow_read"]),
    # read-only keys of the device object are ignored (a read record sent back), but an
    # id that is not the path's, a key no page documents, or a label that is not the
    # profile's, are refused
    ("another id given", lambda s: {"id": str(uuid.uuid4())}, ["id"]),
    ("a typo", lambda s: {"device_identifer": "x"}, ["device_identifer"]),
    ("a field renamed",
     lambda s: {"fields": [{"id": s.mandatory, "value": "m", "name": "other"}]},
     ["fields[0].name", "other"]),
    ("a field made optional",
     lambda s: {"fields": [{"id": s.mandatory, "value": "m", "mandatory": False}]},
     ["fields[0].mandatory"]),
    ("profile given", lambda s: {"device_profile_id": s.profile["id"]}, ["device_profile_id"]),
    ("fields null", lambda s: {"fields": None}, ["fields"]),
    ("NUL in value",
     lambda s: {"fields": [{"id": s.mandatory, "value": "\u0000"}]}, ["NUL"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make_body", "mentions"),
    [case[1:] for case in PUT_REFUSALS],
    ids=[case[0] for case in PUT_REFUSALS],
)
def test_refused_put_is_400_and_changes_nothing(
    shared: Account, make_body: Any, mentions: list[str]
) -> None:
    world = shared_world(shared)
    before = get_device(shared.live, world.device["id"])
    response = shared.live.put(world.path, json=make_body(world))
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert get_device(shared.live, world.device["id"]) == before
    assert before["device_identifier"] == "Old Device"
    assert values_of(before) == {
        "Mandatory Field": "mandatory value",
        "Optional Field": "optional value",
    }


_WORLDS: dict[str, Seeded] = {}


def shared_world(shared: Account) -> Seeded:
    """Seed 003's world in the module's shared account, made once, plus a device named
    "Taken" and a field of another profile."""
    world = _WORLDS.get(shared.account_id)
    if world is None:
        world = _WORLDS[shared.account_id] = Seeded(shared)
        make_device(shared.live, "Taken", world.profile, {"Mandatory Field": "t"})
        world.foreign = make_profile(shared.live, "Foreign", fields=[("f", False)])["fields"][0][
            "id"
        ]
    return world


# --- status and delete --------------------------------------------------------------------------


def test_disable_and_enable_answer_the_device_and_show_in_the_status(seeded: Seeded) -> None:
    client = seeded.account.live
    response = client.put(f"{seeded.path}/disable")
    assert response.status_code == 200, response.text
    answered = response.json()
    assert answered["status"] == "DISABLED"
    assert answered["updated"] >= seeded.device["updated"]
    disabled = get_device(client, seeded.device["id"])
    assert disabled == answered  # the answer is the device as stored
    assert values_of(disabled) == values_of(seeded.device)
    assert all_devices(client) == [disabled]  # still listed
    assert client.put(f"{seeded.path}/disable").status_code == 200  # idempotent
    response = client.put(f"{seeded.path}/enable")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ACTIVE"
    assert get_device(client, seeded.device["id"]) == response.json()


def test_a_disabled_device_can_still_be_updated_with_the_api_key(seeded: Seeded) -> None:
    client = seeded.account.live
    assert client.put(f"{seeded.path}/disable").status_code == 200
    response = client.put(
        seeded.path, json={"fields": [{"id": seeded.mandatory, "value": "while disabled"}]}
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "DISABLED"


def test_delete_answers_the_archived_device_then_it_is_gone(seeded: Seeded) -> None:
    client = seeded.account.live
    device_id = seeded.device["id"]
    response = client.delete(seeded.path)
    assert response.status_code == 200, response.text
    archived = response.json()
    assert (archived["id"], archived["status"]) == (device_id, "DELETED")
    assert values_of(archived) == values_of(seeded.device)
    assert_no_such_device(client.put(f"{seeded.path}/disable"), device_id)
    assert_no_such_device(client.get(seeded.path), device_id)
    assert_no_such_device(client.put(seeded.path, json={}), device_id)
    assert_no_such_device(client.put(f"{seeded.path}/enable"), device_id)
    assert_no_such_device(client.delete(seeded.path), device_id)
    assert_no_such_device(client.get(f"{seeded.path}/certificate"), device_id)
    assert all_devices(client) == []
    assert list_devices(client)["total"] == 0


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {}),
        ("DELETE", "", None),
        ("PUT", "/disable", None),
        ("PUT", "/enable", None),
        ("GET", "/certificate", None),
        ("POST", "/certificate", {"generate_key": True}),
    ],
)
@pytest.mark.parametrize(
    "device_id",
    [
        "9b2f4c1e-7a53-4e0b-8f6d-2c9a1b3e5d70",
        "not-a-uuid",
        "64c029693890",
        "{9b2f4c1e-7a53-4e0b-8f6d-2c9a1b3e5d70}",
        "9b2f4c1e7a534e0b8f6d2c9a1b3e5d70",
    ],
    ids=["unknown", "word", "short hex", "braces", "no hyphens"],
)
def test_unknown_or_malformed_device_id_is_entity_not_found(
    shared: Account, method: str, suffix: str, body: Any, device_id: str
) -> None:
    response = shared.live.request(method, f"/device/{device_id}{suffix}", json=body)
    assert_no_such_device(response, device_id)


# --- credentials --------------------------------------------------------------------------------


ENDPOINTS = [
    ("GET", "/device", None),
    ("POST", "/device", {"device_identifier": "sneaky"}),
    ("GET", "/device/{id}", None),
    ("PUT", "/device/{id}", {"device_identifier": "sneaky"}),
    ("DELETE", "/device/{id}", None),
    ("PUT", "/device/{id}/disable", None),
    ("PUT", "/device/{id}/enable", None),
    ("GET", "/device/{id}/certificate", None),
    ("POST", "/device/{id}/certificate", {"generate_key": True}),
    ("GET", "/division", None),
    ("POST", "/division", {"name": "sneaky"}),
    ("GET", "/device-profile", None),
    ("POST", "/device-profile", {"name": "sneaky"}),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "sk_live_not-a-real-key"},
        {"x-api-key": "sk_live_" + "a" * 300},
        {"authorization": "Bearer sk_live_not-a-real-key"},
    ],
    ids=["missing", "empty", "wrong", "very long", "as bearer"],
)
def test_missing_or_bad_key_is_401_and_writes_nothing(
    shared: Account, headers: dict[str, str]
) -> None:
    device = _sentinel(shared)
    before = all_devices(shared.live)
    with d_client(shared.server, **headers) as client:
        for method, path, body in ENDPOINTS:
            response = client.request(method, path.format(id=device["id"]), json=body)
            assert_errors(response, 401, "invalid_api_key", mentions=["key"])
    assert all_devices(shared.live) == before
    assert get_device(shared.live, device["id"]) == device
    assert shared.live.get(f"/device/{device['id']}/certificate").json()["total"] == 0


_SENTINELS: dict[str, dict[str, Any]] = {}


def _sentinel(shared: Account) -> dict[str, Any]:
    """A device in the shared account that refused requests must leave alone."""
    found = _SENTINELS.get(shared.account_id)
    if found is None:
        found = _SENTINELS[shared.account_id] = make_device(shared.live, "sentinel")
    return found
