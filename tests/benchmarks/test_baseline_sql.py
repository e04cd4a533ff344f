"""The baselines copy devreg's schema and statements as text (they import no devreg code):
the copies must still be what devreg runs, or the comparison measures something else."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import baseline_sql as copied
from devreg.changelog.chain import GENESIS, entry_hash
from devreg.changelog.entries import Entry
from devreg.core.records import ActorKind
from devreg.core.store import DeviceChange
from devreg.storage import change_log, sql
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
    # the change log, written in the PATCH's transaction
    assert sql.in_list(sql.SELECT_ANY_DEVICES_BY_IDS, 1) == copied.SELECT_ANY_DEVICE_BY_ID
    assert copied.CHANGE_COLUMNS == sql.CHANGE_COLUMNS
    assert copied.TAKE_CHANGE_SEQ == sql.TAKE_CHANGE_SEQ
    assert copied.INSERT_CHANGE == sql.INSERT_CHANGE
    assert copied.MOVE_CHANGE_HEAD == sql.MOVE_CHANGE_HEAD
    assert copied.SELECT_OBJECT_HISTORY == sql.SELECT_OBJECT_HISTORY
    assert copied.SELECT_OBJECT_HISTORY_SEQS == sql.SELECT_OBJECT_HISTORY_SEQS
    assert copied.SELECT_OBJECT_AS_OF == sql.SELECT_OBJECT_AS_OF
    for statement in (sql.TAKE_CHANGE_SEQ, sql.INSERT_CHANGE, sql.MOVE_CHANGE_HEAD):
        assert copied.numbered(statement) == numbered(statement)


def test_the_baselines_entry_is_devregs(tmp_path: Path) -> None:
    """The logged baseline's entry: devreg's device record JSON and devreg's chain hash."""
    from benchmarks import baseline_sqlite, baseline_store
    from devreg.changelog.records import device_record
    from devreg.storage.sql import device_from_row

    db = str(tmp_path / "b.sqlite3")
    seeded = baseline_store.seed(db, 3)
    conn = baseline_store.connect(db)
    device = seeded.ids[1]
    for n in range(2):
        params = (f"ref-{n}", n + 1, device, seeded.account_id, 1)
        (row,) = baseline_sqlite.patch_logged(conn, params)
        assert row[3] == f"ref-{n}"
    rows = conn.execute(f"SELECT {sql.CHANGE_COLUMNS} FROM change_log ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2]
    prev = GENESIS
    for r in rows:
        entry = change_log.entry_from_row(r)
        assert entry.actor_kind is ActorKind.BEARER_TOKEN and entry.prev_hash == prev
        assert entry.hash == entry_hash(prev, Entry(**{**_fields(entry), "hash": b""}))
        prev = entry.hash
    head = conn.execute(sql.SELECT_CHANGE_HEAD).fetchone()
    assert (head[0], bytes(head[2])) == (2, prev)
    current = conn.execute(copied.SELECT_ANY_DEVICE_BY_ID, (device,)).fetchone()
    expected = change_log._json(device_record(device_from_row(current), {}))
    assert rows[-1][12] == expected


def _fields(entry: Entry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__struct_fields__}
