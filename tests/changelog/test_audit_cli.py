"""`devreg audit export` and `devreg audit verify` as an operator runs them, on both
stores: the export's lines and head, `--since`, `--account`, `--out`; verify's exit code
and the entry it names when the log was changed behind devreg's back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

from tests.support.server import devreg_env, run_cli


def cli(env: dict[str, str], *args: str) -> Any:
    done = run_cli(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def tamper(own_backend: str | None, data_dir: Path, statement: str) -> None:
    if own_backend is None:
        with sqlite3.connect(data_dir / "devreg.sqlite3") as conn:
            conn.execute(statement)
        return
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(own_backend)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def test_export_and_verify(own_backend: str | None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, own_backend)
    cli(env, "init")
    first = json.loads(cli(env, "account", "create", "--name", "A", "--json").stdout)
    second = json.loads(cli(env, "account", "create", "--name", "B", "--json").stdout)
    devices = tmp_path / "devices.jsonl"
    devices.write_text('{"reference_id": "r1"}\n{"reference_id": "r2"}\n{}\n')
    cli(env, "import", "devices", "--account", first["account_id"], str(devices))

    done = cli(env, "audit", "export")
    entries = lines(done.stdout)
    # two accounts of 5 entries (it, two keys, a division, a profile), three imports
    assert [e["seq"] for e in entries] == list(range(1, 14))
    assert [e["action"] for e in entries[-3:]] == ["device.import"] * 3
    assert entries[-1]["hash"] in done.stderr and "head seq 13" in done.stderr
    for entry in entries:
        assert entry["actor"]["kind"] == "cli" and entry["request_id"].startswith("cli_")
    secrets_given = (first["live_key"], first["test_key"], second["live_key"])
    assert not any(secret in done.stdout for secret in secrets_given)

    since = lines(cli(env, "audit", "export", "--since", "10").stdout)
    assert [e["seq"] for e in since] == [11, 12, 13]
    by_time = lines(cli(env, "audit", "export", "--since", entries[10]["time"]).stdout)
    assert by_time[0]["seq"] <= 11 and by_time[-1]["seq"] == 13
    account_b = second["account_id"].removeprefix("acc_")
    only_b = lines(cli(env, "audit", "export", "--account", second["account_id"]).stdout)
    assert {e["account_id"].replace("-", "") for e in only_b} == {account_b}
    assert len(only_b) == 5

    out = tmp_path / "log.jsonl"
    cli(env, "audit", "export", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert lines(out.read_text()) == entries

    verified = cli(env, "audit", "verify")
    assert "13 entries" in verified.stdout and entries[-1]["hash"] in verified.stdout
    report = json.loads(cli(env, "audit", "verify", "--json").stdout)
    assert report["verified"] is True and report["head_seq"] == 13

    assert (report["pruned_seq"], report["oldest_seq"]) == (0, 1)
    assert report["oldest_time"] == entries[0]["time"] and report["warning"] is None

    tamper(own_backend, data, "UPDATE change_log SET request_id = 'forged' WHERE seq = 7")
    broken = run_cli(env, "audit", "verify")
    assert broken.returncode == 1
    assert "broken at entry 7" in broken.stderr and "edited" in broken.stderr
    report = json.loads(run_cli(env, "audit", "verify", "--json").stdout)
    assert (report["verified"], report["broken_seq"]) == (False, 7)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    env = devreg_env(tmp_path / "data", None)
    cli(env, "init")
    for args in (("--account", "nope"), ("--since", "yesterday")):
        done = run_cli(env, "audit", "export", *args)
        assert done.returncode == 1 and done.stderr.startswith("devreg: "), done.stderr
        assert "Traceback" not in done.stderr


def test_export_out_replaces_a_symlink_and_never_follows_it(tmp_path: Path) -> None:
    env = devreg_env(tmp_path / "data", None)
    cli(env, "init")
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    victim.chmod(0o644)
    out = tmp_path / "log.jsonl"
    out.symlink_to(victim)
    cli(env, "audit", "export", "--out", str(out))
    assert victim.read_text() == "untouched\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert lines(out.read_text()) == lines(cli(env, "audit", "export").stdout)
    # an existing file is replaced by a new one too (not reopened with its mode)
    out.unlink()
    out.write_text("old\n")
    out.chmod(0o666)
    cli(env, "audit", "export", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "old" not in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_verify_warns_when_the_oldest_kept_entry_is_too_young(
    own_backend: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, own_backend)
    cli(env, "init")
    cli(env, "account", "create", "--name", "A", "--json")
    entries = lines(cli(env, "audit", "export").stdout)
    # the oldest entries deleted and the pruned mark moved over them: the chain verifies
    tamper(own_backend, data, "DELETE FROM change_log WHERE seq <= 2")
    pruned_hash = entries[1]["hash"]
    literal = f"X'{pruned_hash}'" if own_backend is None else f"'\\x{pruned_hash}'::bytea"
    tamper(
        own_backend, data,
        f"UPDATE change_head SET pruned_seq = 2, pruned_hash = {literal} WHERE one = 1",
    )  # fmt: skip
    done = cli(env, "audit", "verify", "--json")
    report = json.loads(done.stdout)
    assert report["verified"] is True and report["pruned_seq"] == 2
    assert (report["oldest_seq"], report["oldest_time"]) == (3, entries[2]["time"])
    assert "oldest kept entry (seq 3)" in report["warning"]
    assert "devreg: warning:" in done.stderr and "400-day" in done.stderr
    plain = cli(env, "audit", "verify", "--retention-days", "30")
    assert "30-day retention" in plain.stderr and "verified" in plain.stdout
