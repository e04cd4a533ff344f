"""The shared SQL text: unique-violation mapping and `?` -> `$n` numbering for asyncpg."""

from __future__ import annotations

import re
import sqlite3

import msgspec
import pytest

from devreg.core.accounts import build_account
from devreg.core.ids import new_id
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceChange, DeviceFilter
from devreg.storage import sql
from devreg.storage.migrations import migration_scripts, split_statements
from devreg.storage.postgres import numbered
from tests.storage.conftest import NOW, device_for

# --- duplicate_field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "field"),
    [
        ("devices_reference", "reference_id"),
        ("devices_identifier", "device_identifier"),
        ("divisions_name", "division_name"),
        ("device_profiles_name", "profile_name"),
        ("profile_fields_name", "field_name"),
    ],
)
def test_postgres_index_names_map_to_fields(constraint: str, field: str) -> None:
    assert sql.duplicate_field(constraint) == field


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (
            "UNIQUE constraint failed: devices.account_id, devices.live_mode, devices.reference_id",
            "reference_id",
        ),
        (
            "UNIQUE constraint failed: devices.division_id, devices.live_mode,"
            " devices.device_identifier",
            "device_identifier",
        ),
        ("UNIQUE constraint failed: divisions.account_id, divisions.name", "division_name"),
        (
            "UNIQUE constraint failed: device_profiles.account_id, device_profiles.name",
            "profile_name",
        ),
        (
            "UNIQUE constraint failed: profile_fields.profile_id, profile_fields.name",
            "field_name",
        ),
        ("UNIQUE constraint failed: certificates.fingerprint", "fingerprint"),
        ("UNIQUE constraint failed: certificates.issuer, certificates.serial", "serial"),
    ],
)
def test_sqlite_messages_map_to_fields(message: str, field: str) -> None:
    assert sql.duplicate_field(message) == field


@pytest.mark.parametrize(
    "text",
    [
        "accounts_pkey",
        "devices_pkey",
        "api_keys_key_hash_key",
        "divisions_default",
        "device_profiles_default",
        "UNIQUE constraint failed: devices.id",
        "UNIQUE constraint failed: api_keys.key_hash",
        "UNIQUE constraint failed: divisions.account_id",
        "",
    ],
)
def test_other_unique_violations_map_to_nothing(text: str) -> None:
    """Those are not a client's fault to be reported as a taken value: they propagate."""
    assert sql.duplicate_field(text) is None


def sqlite_schema() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    for _, _, script in migration_scripts("sqlite"):
        for statement in split_statements(script):
            conn.execute(statement)
    return conn


def test_real_sqlite_messages_of_our_indexes_map_to_fields() -> None:
    """The messages the installed SQLite really produces for our unique indexes."""
    conn = sqlite_schema()
    new = build_account("Acme", NOW)

    def collide(statement: str, first: tuple[object, ...], second: tuple[object, ...]) -> str:
        conn.execute(statement, first)
        with pytest.raises(sqlite3.IntegrityError) as caught:
            conn.execute(statement, second)
        return str(caught.value)

    by_reference = collide(
        sql.INSERT_DEVICE,
        sql.device_row(device_for(new, reference_id="ref")),
        sql.device_row(device_for(new, reference_id="ref")),
    )
    assert sql.duplicate_field(by_reference) == "reference_id"

    one = msgspec.structs.replace(device_for(new), device_identifier="SN")
    two = msgspec.structs.replace(device_for(new), device_identifier="SN")
    by_identifier = collide(sql.INSERT_DEVICE, sql.device_row(one), sql.device_row(two))
    assert sql.duplicate_field(by_identifier) == "device_identifier"

    same_id = device_for(new)
    by_id = collide(
        sql.INSERT_DEVICE,
        sql.device_row(same_id),
        sql.device_row(msgspec.structs.replace(same_id, created_at=NOW + 1)),
    )
    assert sql.duplicate_field(by_id) is None  # the primary key: not a client's value

    division = (new_id(), new.account.id, "Plant", False, NOW, NOW)
    by_name = collide(sql.INSERT_DIVISION, division, (new_id(), *division[1:]))
    assert sql.duplicate_field(by_name) == "division_name"


def test_real_postgres_index_names_exist() -> None:
    """The index names the mapping relies on are the ones the PostgreSQL migration makes."""
    script = "\n".join(s for _, _, s in migration_scripts("postgres"))
    unique = set(re.findall(r"CREATE UNIQUE INDEX (\w+)", script))
    for name in ("devices_reference", "devices_identifier", "divisions_name",
                 "device_profiles_name", "profile_fields_name"):  # fmt: skip
        assert name in unique
        assert sql.duplicate_field(name) is not None


# --- numbered -----------------------------------------------------------------------------


def test_numbered_replaces_placeholders_in_order() -> None:
    assert numbered("SELECT a FROM t WHERE b = ? AND c = ?") == (
        "SELECT a FROM t WHERE b = $1 AND c = $2"
    )


def test_numbered_leaves_statements_without_placeholders_alone() -> None:
    assert numbered("SELECT 1") == "SELECT 1"
    assert numbered(sql.SELECT_HEALTH) == sql.SELECT_HEALTH


def test_numbered_restarts_at_1_for_every_statement() -> None:
    assert numbered("SELECT ?") == "SELECT $1"
    assert numbered("SELECT ?, ?, ?") == "SELECT $1, $2, $3"
    assert numbered("SELECT ? + 0") == "SELECT $1 + 0"


def test_numbered_goes_past_nine() -> None:
    text = numbered(", ".join("?" * 12))
    assert text == ", ".join(f"${n}" for n in range(1, 13))


def placeholders(statement: str) -> list[int]:
    return [int(n) for n in re.findall(r"\$(\d+)", numbered(statement))]


@pytest.mark.parametrize(
    ("statement", "arity"),
    [
        (sql.INSERT_ACCOUNT, 5),
        (sql.SELECT_ACCOUNT_VERSION, 1),
        (sql.UPDATE_ACCOUNT_VERSION, 2),
        (sql.INSERT_API_KEY, len(sql.KEY_COLUMNS.split(","))),
        (sql.INSERT_DIVISION, 6),
        (sql.INSERT_PROFILE, len(sql.PROFILE_COLUMNS.split(","))),
        (sql.INSERT_DEVICE, len(sql.DEVICE_COLUMNS.split(","))),
        (sql.SELECT_KEY_STANDING_BY_HASH, 1),
        (sql.INSERT_KEY_DIVISION, 2),
        (sql.SELECT_DEFAULT_PROFILE, 1),
        (sql.SELECT_DEVICE, 3),
        (sql.SELECT_DEVICE_ANY_STATUS, 3),
    ],
)
def test_statements_number_every_parameter(statement: str, arity: int) -> None:
    assert "?" not in numbered(statement)
    assert placeholders(statement) == list(range(1, arity + 1))


def test_insert_device_takes_a_device_row() -> None:
    row = sql.device_row(device_for(build_account("Acme", NOW), reference_id="x"))
    assert placeholders(sql.INSERT_DEVICE) == list(range(1, len(row) + 1))
    assert row[7] == DeviceStatus.ACTIVE.value  # status goes to the database as text


LIMITS = [None, frozenset(), frozenset({b"\x02" * 16}), frozenset({b"\x03" * 16, b"\x02" * 16})]


@pytest.mark.parametrize("reference", [None, "ref"])
@pytest.mark.parametrize("cursor", [None, (NOW, b"\x01" * 16)])
@pytest.mark.parametrize("direction", ["older", "newer"])
@pytest.mark.parametrize("divisions", LIMITS)
def test_list_query_parameters_match_placeholders(
    reference: str | None,
    cursor: tuple[int, bytes] | None,
    direction: str,
    divisions: frozenset[bytes] | None,
) -> None:
    statement, params, ascending = sql.list_devices_query(
        b"\x00" * 16, True, 31, reference, cursor, direction, divisions
    )
    for division_id in divisions or ():
        assert division_id in params
    if divisions is not None and not divisions:
        assert "0 = 1" in statement  # a limit to no division matches nothing
    assert placeholders(statement) == list(range(1, len(params) + 1))
    assert params[-1] == 31  # LIMIT is last
    assert ascending == (cursor is not None and direction == "newer")
    if reference is not None:
        assert "reference_id = ?" in statement and "ref" in params


@pytest.mark.parametrize(
    "changes",
    [
        {"reference_id": "x"},
        {"status": DeviceStatus.DELETED},
        {"allow_read": True, "allow_write": False, "allow_renew": True, "reference_id": None},
    ],
)
def test_update_statement_parameters_match_placeholders(changes: dict[str, object]) -> None:
    change = DeviceChange(**changes)  # type: ignore[arg-type]
    statement, params = sql.update_device_statement(change, b"a" * 16, False, b"d" * 16, NOW)
    assert placeholders(statement) == list(range(1, len(params) + 1))
    assert params[-4:] == [NOW, b"d" * 16, b"a" * 16, False]
    for column in changes:
        assert f"{column} = ?" in statement


@pytest.mark.parametrize("divisions", LIMITS)
def test_query_statements_limit_to_divisions(divisions: frozenset[bytes] | None) -> None:
    where = DeviceFilter(division_id=b"\x04" * 16, division_ids=divisions)
    page, count, page_params, count_params = sql.query_devices_statements(
        b"\x00" * 16, True, where, 10, 5
    )
    assert placeholders(page) == list(range(1, len(page_params) + 1))
    assert placeholders(count) == list(range(1, len(count_params) + 2))  # and the bound
    assert page_params[-2:] == [10, 5]
    assert sorted(divisions or ()) == [p for p in page_params if p in (divisions or ())]


def test_update_statement_writes_status_as_text() -> None:
    _, params = sql.update_device_statement(
        DeviceChange(status=DeviceStatus.DISABLED), b"a" * 16, True, b"d" * 16, NOW
    )
    assert params[0] == "DISABLED"
    assert type(params[0]) is str


def test_migration_files_exist_for_both_backends() -> None:
    versions = [v for v, _, _ in migration_scripts("sqlite")]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 5
    assert [v for v, _, _ in migration_scripts("postgres")] == versions


def test_sqlite_trigger_bodies_survive_the_statement_split() -> None:
    """A trigger's own statements end in `;` too: the split ends it at `END;` only."""
    script = "\n".join([
        "CREATE TABLE t (a INTEGER);",
        "CREATE TRIGGER t_moved AFTER UPDATE ON t",
        "BEGIN",
        "    UPDATE t SET a = a + 1",
        "        WHERE a < 0;",
        "    DELETE FROM t WHERE a > 9;",
        "END;",
        "-- a comment;",
        "CREATE INDEX t_a ON t (a);",
    ])  # fmt: skip
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END")
    assert "DELETE FROM t WHERE a > 9;" in statements[1]
    conn = sqlite_schema()
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    assert {name for (name,) in triggers} >= {
        "certificates_revocation_updated", "certificates_revocation_inserted",
        "certificates_revocation_deleted",
    }  # fmt: skip
