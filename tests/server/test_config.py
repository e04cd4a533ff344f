"""Configuration: the durability setting and the quotas, from the environment and the command
line."""

from __future__ import annotations

import re
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


def test_the_connection_limits_come_from_the_environment() -> None:
    config = load_config(
        environ={
            "DEVREG_DRAIN_TIMEOUT": "5",
            "DEVREG_SHUTDOWN_TIMEOUT": "3",
            "DEVREG_MAX_CONNECTIONS_PER_ADDRESS": "0",
            "DEVREG_MAX_OUTPUT_BUFFER": "1048576",
        }
    )
    assert (config.drain_timeout, config.shutdown_timeout) == (5.0, 3.0)
    assert (config.max_connections_per_address, config.max_output_buffer) == (0, 1048576)
    defaults = load_config(environ={})
    assert (defaults.drain_timeout, defaults.shutdown_timeout) == (30.0, 10.0)
    assert defaults.max_connections_per_address == 256


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("DEVREG_DRAIN_TIMEOUT", "0", "between 0 and 3600"),
        ("DEVREG_SHUTDOWN_TIMEOUT", "3601", "between 0 and 3600"),
        ("DEVREG_MAX_CONNECTIONS_PER_ADDRESS", "-1", "0 (no limit) or more"),
        ("DEVREG_MAX_OUTPUT_BUFFER", "1000", "at least 65536"),
    ],
)
def test_connection_limits_out_of_range_are_refused(variable: str, value: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        load_config(environ={variable: value})
