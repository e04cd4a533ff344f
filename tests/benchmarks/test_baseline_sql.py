"""The baselines copy devreg's schema and statements as text (they import no devreg code):
the copies must still be what devreg runs, or the comparison measures something else."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import baseline_sql as copied
from devreg.core.store import DeviceChange
from devreg.storage import sql
from devreg.storage.postgres import numbered

MIGRATIONS = Path(sql.__file__).parent / "migrations"


def _statements(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_schemas_are_devregs_create_statements_verbatim() -> None:
    for schema, dialect in ((copied.SQLITE_SCHEMA, "sqlite"), (copied.POSTGRES_SCHEMA, "postgres")):
        migration = " ".join(
            _normal(path.read_text()) for path in sorted(MIGRATIONS.glob(f"*.{dialect}.sql"))
        )
        for statement in _statements(schema):
            assert _normal(statement) + ";" in migration, statement


def test_the_statements_are_devregs() -> None:
    device_id, account, now = b"\x01" * 16, b"\x02" * 16, 0
    assert copied.SELECT_DEVICE == sql.SELECT_DEVICE
    assert copied.SELECT_DEVICE_ANY_STATUS == sql.SELECT_DEVICE_ANY_STATUS
    patch, _ = sql.update_device_statement(
        DeviceChange(reference_id="r"), account, True, device_id, now
    )
    assert patch == copied.UPDATE_REFERENCE
    listing, _, _ = sql.list_devices_query(account, True, 31, None, (now, device_id), "older")
    assert listing == copied.LIST_OLDER
    assert copied.SELECT_CERTIFICATE == sql.SELECT_CERTIFICATE
    assert copied.SELECT_DEVICE_BY_ID == sql.SELECT_DEVICE_BY_ID
    assert copied.SELECT_PROFILE == sql.SELECT_PROFILE
    assert copied.SELECT_DIVISION == sql.SELECT_DIVISION
    assert sql.in_list(sql.SELECT_FIELDS_OF, 1) == copied.SELECT_FIELDS_OF_ONE
    assert sql.in_list(sql.SELECT_VALUES_OF, 1) == copied.SELECT_VALUES_OF_ONE
    by_device, _ = sql.update_device_statement(
        DeviceChange(device_identifier="d", last_seen=now), account, True, device_id, now, True
    )
    assert by_device == copied.UPDATE_BY_DEVICE
    assert copied.DELETE_VALUES == sql.DELETE_VALUES
    assert copied.INSERT_VALUE == sql.INSERT_VALUE
    assert copied.TOUCH_LAST_SEEN == sql.TOUCH_LAST_SEEN
    assert copied.numbered(copied.UPDATE_REFERENCE) == numbered(patch)
