"""The TLS side of the command line: `init` makes the CA and the server certificate, and
the options (and their DEVREG_* variables) of the client-certificate listener."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from devreg.server.config import export_config, load_config
from tests.cli.test_cli import assert_clean_failure
from tests.support.server import devreg_env, run_cli


def san(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(value) for value in names.get_values_for_type(x509.DNSName)} | {
        str(value) for value in names.get_values_for_type(x509.IPAddress)
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_the_ca_and_the_server_certificate_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, None)
    done = run_cli(env, "init", "--tls-name", "devreg.example", "--tls-name", "192.0.2.10")
    assert done.returncode == 0, done.stderr
    assert mode(data / "ca.key") == 0o600 and mode(data / "server.key") == 0o600
    assert san(data / "server.pem") == {
        "localhost",
        "devreg.example",
        "127.0.0.1",
        "::1",
        "192.0.2.10",
    }
    files = {name: (data / name).read_bytes() for name in ("ca.pem", "server.pem", "server.key")}
    again = run_cli(env, "init", "--tls-name", "devreg.example", "--tls-name", "192.0.2.10")
    assert again.returncode == 0, again.stderr
    assert {name: (data / name).read_bytes() for name in files} == files
    # account create leaves the server certificate alone, whatever names it was given
    assert run_cli(env, "account", "create", "--name", "Acme", "--json").returncode == 0
    assert (data / "server.pem").read_bytes() == files["server.pem"]


def test_names_from_the_environment_and_a_change_remakes_the_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli(devreg_env(data, None, tls_names="a.example, b.example"), "init").returncode == 0
    assert {"a.example", "b.example"} <= san(data / "server.pem")
    ca = (data / "ca.pem").read_bytes()
    assert run_cli(devreg_env(data, None, tls_names="c.example"), "init").returncode == 0
    assert san(data / "server.pem") == {"localhost", "c.example", "127.0.0.1", "::1"}
    assert (data / "ca.pem").read_bytes() == ca  # the CA stays


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["init", "--tls-name", "bad name"], ["tls-name", "bad name"]),
        (["init", "--tls-name=-x.example"], ["tls-name"]),
        (["serve", "--trusted-proxy", "proxy.example"], ["trusted-proxy", "proxy.example"]),
        (["serve", "--trusted-proxy", "10.0.0.0/33"], ["trusted-proxy"]),
        (["serve", "--port", "9000", "--mtls-port", "9000"], ["mtls-port", "9000"]),
        (["serve", "--mtls-port", "70000"], ["mtls-port"]),
        (["serve", "--mtls-port", "-1"], ["mtls-port"]),
    ],
)
def test_bad_tls_options_are_refused(tmp_path: Path, args: list[str], words: list[str]) -> None:
    done = run_cli(devreg_env(tmp_path / "data", None), *args)
    assert_clean_failure(done, *words)


def test_serve_help_names_the_options() -> None:
    done = run_cli(devreg_env(Path("/nonexistent"), None), "serve", "--help")
    assert done.returncode == 0
    for option in ("--mtls-port", "--tls-name", "--client-ca", "--trusted-proxy"):
        assert option in done.stdout
    for variable in (
        "DEVREG_MTLS_PORT",
        "DEVREG_TLS_NAMES",
        "DEVREG_CLIENT_CA_FILES",
        "DEVREG_TRUSTED_PROXIES",
    ):
        assert variable in done.stdout


def test_the_options_round_trip_through_the_environment() -> None:
    config = load_config(
        {"mtls_port": 0, "client_ca_files": ["/etc/a.pem"]},
        {
            "DEVREG_TLS_NAMES": "x.example,,10.0.0.1 ",
            "DEVREG_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
            "DEVREG_CLIENT_CA_FILES": "/ignored.pem",  # the command line wins
            "DEVREG_MTLS_PORT": "9443",
        },
    )
    assert config.mtls_port == 0
    assert config.tls_names == ("x.example", "10.0.0.1")
    assert config.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert config.client_ca_files == (Path("/etc/a.pem"),)
    environ: dict[str, str] = {}
    export_config(config, environ)
    assert environ["DEVREG_TRUSTED_PROXIES"] == "127.0.0.1,10.0.0.0/8"
    assert load_config(environ=environ) == config
    assert load_config(environ={}).mtls_port == 8443  # the default
