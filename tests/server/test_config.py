"""Configuration: the durability setting and the quotas, from the environment and the command
line."""

from __future__ import annotations

from pathlib import Path

import pytest

from devreg.core.quotas import Quotas
from devreg.server.config import export_config, load_config
from tests.cli.test_cli import assert_clean_failure
from tests.support.server import devreg_env, run_cli, start_server


def test_durability_is_full_unless_asked_otherwise() -> None:
    assert load_config(environ={}).durable
    relaxed = load_config(environ={"DEVREG_DURABILITY": "normal"})
    assert relaxed.durability == "normal" and not relaxed.durable
    assert load_config({"durability": "full"}, {"DEVREG_DURABILITY": "normal"}).durable
    environ: dict[str, str] = {}
    export_config(relaxed, environ)  # what the worker processes read
    assert load_config(environ=environ) == relaxed


@pytest.mark.parametrize("value", ["none", "FULL ", "off", "0"])
def test_an_unknown_durability_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="durability must be one of full, normal"):
        load_config(environ={"DEVREG_DURABILITY": value})


def test_serve_refuses_an_unknown_durability_and_says_which_it_runs(tmp_path: Path) -> None:
    done = run_cli(devreg_env(tmp_path / "data", None), "serve", "--durability", "fast")
    assert_clean_failure(done, "durability", "full", "normal")
    server = start_server(tmp_path / "data", args=["--durability", "normal"])
    try:
        assert "durability normal" in server.log()
    finally:
        server.stop()


def test_quotas_come_from_the_environment() -> None:
    assert load_config(environ={}).quotas == Quotas()
    given = {"DEVREG_MAX_DEVICES": "5", "DEVREG_MAX_PROFILES": "6", "DEVREG_MAX_DIVISIONS": "7"}
    assert load_config(environ=given).quotas == Quotas(devices=5, profiles=6, divisions=7)
    environ: dict[str, str] = {}
    export_config(load_config(environ=given), environ)  # workers read the same quotas
    assert load_config(environ=environ).quotas == Quotas(devices=5, profiles=6, divisions=7)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_quota_below_one_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        load_config(environ={"DEVREG_MAX_DEVICES": value})
