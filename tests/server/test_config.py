"""Configuration: the durability setting, from the environment and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

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
