"""Issuing device certificates over HTTP: from a CSR made with the `openssl` binary, or with
a key made by the server; the answer is checked with openssl against the server's /ca.pem."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tests.dialect_d.helpers import (
    CERTIFICATE_KEYS,
    Account,
    assert_errors,
    assert_no_such_device,
    make_csr,
    make_device,
    openssl,
    parse_time,
)


@pytest.fixture
def work(tmp_path: Path, account: Account) -> Path:
    """A directory with the server's CA certificate, as a client would fetch it."""
    response = httpx.get(account.server.base_url + "/ca.pem")
    assert response.status_code == 200
    (tmp_path / "ca.pem").write_bytes(response.content)
    return tmp_path


def certificates(client: httpx.Client, device_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/device/{device_id}/certificate")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"limit", "offset", "total", "records"}, body
    assert body["total"] == len(body["records"]), body
    records: list[dict[str, Any]] = body["records"]
    return records


def check_certificate(work: Path, body: dict[str, Any], device_id: str) -> x509.Certificate:
    """What a client checks on an issued certificate: openssl accepts it for client auth
    under the server's CA, and the answer describes it truthfully."""
    (work / "issued.pem").write_text(body["pem"])
    verified = openssl(work, "verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "issued.pem")
    assert verified.strip() == "issued.pem: OK"
    cert = x509.load_pem_x509_certificate(body["pem"].encode())
    assert uuid.UUID(body["certificate_id"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:uuid:{device_id}"]
    assert int(body["serial_number"], 16) == cert.serial_number
    der = cert.public_bytes(serialization.Encoding.DER)
    assert body["thumbprint"] == hashlib.sha256(der).hexdigest().upper()
    assert parse_time(body["not_before"]) == cert.not_valid_before_utc.replace(microsecond=0)
    assert parse_time(body["not_after"]) == cert.not_valid_after_utc.replace(microsecond=0)
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 90
    return cert


def test_certificate_from_an_openssl_csr(account: Account, work: Path) -> None:
    device = make_device(account.live, "gw-1")
    key, csr = make_csr(work, "device")
    response = account.live.post(f"/device/{device['id']}/certificate", json={"csr": csr})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == CERTIFICATE_KEYS  # no private_key: the client has its own
    assert body["status"] == "ACTIVE"
    check_certificate(work, body, device["id"])
    # The certificate is for the CSR's key.
    assert openssl(work, "x509", "-in", "issued.pem", "-pubkey", "-noout") == openssl(
        work, "pkey", "-in", str(key), "-pubout"
    )
    assert certificates(account.live, device["id"]) == [body]


def test_certificate_from_an_rsa_csr(account: Account, work: Path) -> None:
    device = make_device(account.live, "gw-rsa")
    _, csr = make_csr(work, "rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    response = account.live.post(f"/device/{device['id']}/certificate", json={"csr": csr})
    assert response.status_code == 201, response.text
    check_certificate(work, response.json(), device["id"])


def test_certificate_with_a_key_made_by_the_server(account: Account, work: Path) -> None:
    device = make_device(account.live, "gw-2")
    response = account.live.post(f"/device/{device['id']}/certificate", json={"generate_key": True})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {*CERTIFICATE_KEYS, "private_key"}
    assert body["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    check_certificate(work, body, device["id"])
    (work / "server.key").write_text(body["private_key"])
    assert openssl(work, "x509", "-in", "issued.pem", "-pubkey", "-noout") == openssl(
        work, "pkey", "-in", "server.key", "-pubout"
    )
    # The key is returned once: the list never shows it.
    listed = certificates(account.live, device["id"])
    assert listed == [{k: v for k, v in body.items() if k != "private_key"}]


def test_certificates_are_listed_in_issue_order(account: Account, work: Path) -> None:
    device = make_device(account.live, "gw-3")
    path = f"/device/{device['id']}/certificate"
    _, csr = make_csr(work, "first")
    first = account.live.post(path, json={"csr": csr, "generate_key": False}).json()
    second = account.live.post(path, json={"generate_key": True}).json()
    again = account.live.post(path, json={"csr": csr}).json()  # same key, same device: fine
    second.pop("private_key")
    assert certificates(account.live, device["id"]) == [first, second, again]
    assert len({c["serial_number"] for c in (first, second, again)}) == 3
    # Another device has none of them.
    assert certificates(account.live, make_device(account.live, "gw-4")["id"]) == []


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({}, ["csr", "generate_key"]),
        ({"generate_key": False}, ["csr", "generate_key"]),
        ({"generate_key": True, "csr": "x"}, ["csr", "generate_key"]),
        ({"csr": "garbage"}, ["csr", "PEM"]),
        ({"csr": ""}, ["csr"]),
        ({"csr": 5}, ["csr"]),
        ({"csr": None}, ["csr"]),
        ({"generate_key": "yes"}, ["generate_key"]),
        ({"csr": "A" * 70_000}, ["csr", "too large"]),
        ({"pem": "x"}, ["pem"]),
    ],
    ids=[
        "neither",
        "generate false",
        "both",
        "garbage",
        "empty csr",
        "csr number",
        "csr null",
        "generate string",
        "huge csr",
        "unknown field",
    ],
)
def test_bad_certificate_request_is_400_and_records_nothing(
    shared: Account, body: dict[str, Any], mentions: list[str]
) -> None:
    device = _shared_device(shared)
    response = shared.live.post(f"/device/{device['id']}/certificate", json=body)
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert certificates(shared.live, device["id"]) == []


@pytest.mark.parametrize(
    ("key_args", "mentions"),
    [
        (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], ["RSA", "1024"]),
        (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime192v1"], ["curve"]),
        (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"], ["secp256k1"]),
        (["-algorithm", "ED448"], ["Ed448"]),
    ],
    ids=["rsa-1024", "p-192", "secp256k1", "ed448"],
)
def test_weak_or_unaccepted_keys_are_refused(
    shared: Account, tmp_path: Path, key_args: list[str], mentions: list[str]
) -> None:
    device = _shared_device(shared)
    _, csr = make_csr(tmp_path, "weak", key_args)
    response = shared.live.post(f"/device/{device['id']}/certificate", json={"csr": csr})
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert certificates(shared.live, device["id"]) == []


def test_a_key_of_another_device_is_refused(account: Account, work: Path) -> None:
    first, second = make_device(account.live, "first"), make_device(account.live, "second")
    _, csr = make_csr(work, "shared-key")
    issued = account.live.post(f"/device/{first['id']}/certificate", json={"csr": csr})
    assert issued.status_code == 201, issued.text
    response = account.live.post(f"/device/{second['id']}/certificate", json={"csr": csr})
    assert_errors(response, 400, "invalid_input", mentions=["another device"])
    assert certificates(account.live, second["id"]) == []
    assert certificates(account.live, first["id"]) == [issued.json()]


def test_certificates_of_unknown_other_mode_or_other_accounts_devices(
    account: Account, other: Account, work: Path
) -> None:
    device = make_device(account.live, "mine")
    _, csr = make_csr(work, "k")
    path = f"/device/{device['id']}/certificate"
    for client in (other.live, account.test):
        assert_no_such_device(client.post(path, json={"csr": csr}), device["id"])
        assert_no_such_device(client.post(path, json={"generate_key": True}), device["id"])
        assert_no_such_device(client.get(path), device["id"])
    unknown = str(uuid.uuid4())
    response = account.live.post(f"/device/{unknown}/certificate", json={"generate_key": True})
    assert_no_such_device(response, unknown)
    assert certificates(account.live, device["id"]) == []


_DEVICES: dict[str, dict[str, Any]] = {}


def _shared_device(shared: Account) -> dict[str, Any]:
    found = _DEVICES.get(shared.account_id)
    if found is None:
        found = _DEVICES[shared.account_id] = make_device(shared.live, "no certificates")
    return found
