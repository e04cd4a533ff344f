"""`devreg import devices` and `devreg export devices`, run as the real executable against
real data directories, on SQLite and on PostgreSQL, with real `devreg serve` processes to
show the imported devices through both dialects."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.dialect_d.helpers import d_client, make_division, make_profile
from tests.dialect_f.helpers import anonymous_client, bearer_client, login
from tests.support.server import (
    DEVREG,
    RunningServer,
    create_account,
    devreg_env,
    run_cli,
    start_server,
)

SEEN = "2024-05-06T07:08:09.123456Z"
SENSOR_FLAGS = {"device_api_allow_renew_certificate": False}


def cli_account(env: dict[str, str]) -> str:
    done = run_cli(env, "account", "create", "--name", "Acme", "--json")
    assert done.returncode == 0, done.stderr
    account_id: str = json.loads(done.stdout)["account_id"]
    return account_id


def import_file(
    env: dict[str, str], account_id: str, path: Path | str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(env, "import", "devices", str(path), "--account", account_id, *extra)


def export_lines(env: dict[str, str], account_id: str) -> list[dict[str, Any]]:
    done = run_cli(env, "export", "devices", "--account", account_id)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


# --- round trip through two installations ----------------------------------------------------


def populate(server: RunningServer, account: dict[str, str], tmp_path: Path) -> None:
    """Devices of every kind, made the way clients make them: dialect D with a division,
    a profile, field values, flags and a disabled device; dialect F in both modes and a
    deleted device; and one imported with a last_seen (a device having called us)."""
    live_key, test_key = account["live_key"], account["test_key"]
    with d_client(server, live_key) as d, d_client(server, test_key) as d_test:
        division = make_division(d, "Plant")
        profile = make_profile(d, "Sensor", division_id=division["id"], **SENSOR_FLAGS)
        serial, colour = (f["id"] for f in profile["fields"])

        def device(identifier: str, *values: tuple[str, str]) -> str:
            fields = [{"id": field_id, "value": value} for field_id, value in values]
            body = {"device_identifier": identifier, "device_profile_id": profile["id"]}
            made = d.post("/device", json={**body, "fields": fields})
            assert made.status_code == 201, made.text
            device_id: str = made.json()["id"]
            return device_id

        device("sensor-1", (serial, "S-1"), (colour, "red"))
        second = device("sensor-2", (serial, "S-2"))
        update = {"fields": [{"id": serial, "value": "S-2b"}], "device_api_allow_read": False}
        changed = d.put(f"/device/{second}", json=update)
        assert changed.status_code == 201, changed.text
        assert d.put(f"/device/{second}/disable").status_code == 200
        test_device = d_test.post("/device", json={"device_identifier": "sensor-1"})
        assert test_device.status_code == 201, test_device.text

    with bearer_client(server, token(server, account, live_key)) as f:
        assert f.post("/devices", json={"reference_id": "F-1"}).status_code == 201
        gone = f.post("/devices", json={"reference_id": "gone"}).json()["id"]
        assert f.delete(f"/devices/{gone}").status_code == 202
    with bearer_client(server, token(server, account, test_key)) as f_test:
        assert f_test.post("/devices", json={"reference_id": "T-1"}).status_code == 201

    # Imported while the server runs: it serves the device at once.
    lines = write_lines(tmp_path / "seen.jsonl", {"reference_id": "seen", "last_seen": SEEN})
    done = import_file(server.env, account["account_id"], lines)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 1 devices\n"


def token(server: RunningServer, account: dict[str, str], key: str) -> str:
    with anonymous_client(server) as anon:
        return login(anon, account["account_id"], key)


def both_dialects(server: RunningServer, account: dict[str, str], line: dict[str, Any]) -> Any:
    """What F GET /devices/{id} and D GET /iot/api/v2/device/{id} answer for the device."""
    key = account["live_key" if line["live_mode"] else "test_key"]
    with bearer_client(server, token(server, account, key)) as f:
        f_view = f.get(f"/devices/{line['flatpeak_id']}")
    with d_client(server, key) as d:
        d_view = d.get(f"/device/{line['id']}")
    assert f_view.status_code == 200, f_view.text
    assert d_view.status_code == 200, d_view.text
    return f_view.json(), d_view.json()


def without_installation_ids(view: Any) -> Any:
    """A view with what differs between two installations (account, division, profile
    and field ids) blanked; everything a device carries stays."""
    if isinstance(view, dict):
        return {
            key: "*" if key == "account_id" else without_installation_ids(value)
            for key, value in view.items()
            if not (key == "id" and "name" in view)  # a division's, profile's or field's id
        }
    if isinstance(view, list | tuple):
        return [without_installation_ids(item) for item in view]
    return view


def test_an_export_imported_into_a_fresh_installation_is_the_same_devices(
    backend: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target_url = None if backend is None else request.getfixturevalue("empty_postgres_url")
    source = start_server(tmp_path / "source", database_url=backend, rate_limit=0)
    try:
        account = create_account(source, "Acme")
        populate(source, account, tmp_path)
        out = tmp_path / "export" / "devices.jsonl"
        out.parent.mkdir()
        done = run_cli(source.env, "export", "devices", "--account", account["account_id"],
                       "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        exported = [json.loads(line) for line in out.read_text().splitlines()]
        source_views = [both_dialects(source, account, line) for line in exported]
    finally:
        source.stop()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert os.listdir(out.parent) == ["devices.jsonl"]  # no partial file left beside it
    # Oldest first, both modes, the deleted device left out.
    made = [(line["reference_id"], line["device_identifier"]) for line in exported]
    assert made == [(None, "sensor-1"), (None, "sensor-2"), (None, "sensor-1"), ("F-1", None),
                    ("T-1", None), ("seen", None)]  # fmt: skip
    serial_and_colour = [{"name": "serial", "value": "S-1"}, {"name": "colour", "value": "red"}]
    assert exported[0]["fields"] == serial_and_colour
    assert exported[1]["status"] == "DISABLED" and exported[1]["device_api_allow_read"] is False
    assert exported[-1]["last_seen"] == SEEN

    target = start_server(tmp_path / "target", database_url=target_url, rate_limit=0)
    try:
        fresh = create_account(target, "Acme again")
        with d_client(target, fresh["live_key"]) as d:  # the same profile, by name
            division = make_division(d, "Plant")
            make_profile(d, "Sensor", division_id=division["id"], **SENSOR_FLAGS)
        done = import_file(target.env, fresh["account_id"], out, "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["imported"] == 6 and summary["seconds"] >= 0
        target_views = [both_dialects(target, fresh, line) for line in exported]
        reexported = export_lines(target.env, fresh["account_id"])
    finally:
        target.stop()

    # Through both dialects each device reads the same, ids and times included.
    assert without_installation_ids(target_views) == without_installation_ids(source_views)
    assert target_views[0][1]["device_identifier"] == "sensor-1"
    assert target_views[0][1]["fields"][1]["value"] == "red"
    assert target_views[-1][0]["last_seen"] == "2024-05-06T07:08:09Z"
    # And the export of the copy is the export of the original, to the microsecond.
    assert without_installation_ids(reexported) == without_installation_ids(exported)


# --- all or nothing -------------------------------------------------------------------------


def test_bad_lines_exit_1_each_with_its_number_and_nothing_is_written(
    backend: str | None, tmp_path: Path
) -> None:
    env = devreg_env(tmp_path / "data", backend)
    account = cli_account(env)
    first = import_file(env, account, write_lines(tmp_path / "a", {"reference_id": "stored"}))
    assert first.returncode == 0, first.stderr
    before = export_lines(env, account)
    stored_id = before[0]["id"]

    lines = write_lines(
        tmp_path / "b.jsonl",
        {"reference_id": "new-1"},
        {"reference_id": "stored"},
        {"reference_id": "new-1"},
        '{"reference_id": "half',
        {"status": "GONE"},
        {"reference_id": "fine", "colour": "red"},
        {"reference_id": "fine"},
    )
    done = import_file(env, account, lines)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"line 2: reference_id 'stored' is already used by device {stored_id}",
        "line 3: reference_id 'new-1' is also on line 1",
        "line 4: JSON is malformed: invalid character (byte 22)",  # the newline in a string
        "line 5: Invalid enum value 'GONE' - at `$.status`",
        "line 6: Object contains unknown field `colour`",
        "devreg: 5 bad line(s): nothing was imported",
    ]
    assert export_lines(env, account) == before


def test_the_list_of_bad_lines_is_capped_and_the_rest_counted(tmp_path: Path) -> None:
    env = devreg_env(tmp_path / "data", None)
    account = cli_account(env)
    lines = write_lines(tmp_path / "bad.jsonl", *[{"live_mode": "no"}] * 130)
    done = import_file(env, account, lines)
    assert done.returncode == 1
    said = done.stderr.splitlines()
    assert len(said) == 102
    assert said[0] == "line 1: Expected `bool`, got `str` - at `$.live_mode`"
    assert said[99].startswith("line 100: ")
    assert said[100:] == ["... and 30 more", "devreg: 130 bad line(s): nothing was imported"]
    assert export_lines(env, account) == []


def test_an_unknown_or_malformed_account_is_a_clear_error(
    backend: str | None, tmp_path: Path
) -> None:
    env = devreg_env(tmp_path / "data", backend)
    cli_account(env)
    lines = write_lines(tmp_path / "a.jsonl", {})
    nobody = "acc_" + "0" * 32
    for done in (
        import_file(env, nobody, lines),
        run_cli(env, "export", "devices", "--account", nobody),
    ):
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == f"devreg: no account {nobody} in this database\n"
    malformed = import_file(env, "Acme", lines)
    assert malformed.returncode == 1
    assert malformed.stderr.startswith("devreg: --account must be acc_ and 32 lowercase hex")
    missing = run_cli(env, "import", "devices", str(lines))
    assert missing.returncode == 2 and "--account" in missing.stderr  # argparse's usage error
    unreadable = import_file(env, cli_account(env), tmp_path / "no-such.jsonl")
    assert unreadable.returncode == 1 and "No such file" in unreadable.stderr


# --- stdin, stdout, the export file ---------------------------------------------------------


def test_import_reads_standard_input_and_export_writes_standard_output(
    backend: str | None, tmp_path: Path
) -> None:
    env = devreg_env(tmp_path / "data", backend)
    account = cli_account(env)
    text = '{"reference_id": "one"}\n\n{"reference_id": "two", "live_mode": false}\n'
    done = subprocess.run(
        [DEVREG, "import", "devices", "-", "--account", account, "--json"],
        input=text, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"] == 2
    lines = export_lines(env, account)
    assert [(x["reference_id"], x["live_mode"]) for x in lines] == [("one", True), ("two", False)]
    assert all(re.fullmatch(r"dev_[0-9a-f]{32}", x["flatpeak_id"]) for x in lines)


def test_the_export_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    env = devreg_env(tmp_path / "data", None)
    account = cli_account(env)
    assert import_file(env, account, write_lines(tmp_path / "a.jsonl", *[{}] * 3)).returncode == 0
    out = tmp_path / "devices.jsonl"
    out.write_text("an older, world-readable export\n")
    out.chmod(0o644)
    done = run_cli(env, "export", "devices", "--account", account, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [json.loads(x) for x in out.read_text().splitlines()] == export_lines(env, account)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "data", "devices.jsonl"]
