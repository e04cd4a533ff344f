"""CertificateService with the real CA and the real store (both backends): CSRs made with
the `openssl` binary, certificates checked with `openssl verify`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devreg.core.devices import DeviceService
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import new_id, render_uuid
from devreg.core.records import Caller, Device
from devreg.core.store import DeviceStore
from devreg.pki.ca import CA_CERT_FILE, CertificateAuthority, load_or_create_ca
from devreg.pki.issuing import CertificateService, Issued
from devreg.pki.keys import public_key_hash
from tests.core.conftest import Tenant, make_tenant

KEY_SPECS = {
    "ec-p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "rsa-2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa-1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    "ec-p192": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
    "ec-secp256k1": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
}


def openssl(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def make_key(directory: Path, kind: str, name: str = "device") -> Path:
    key = directory / f"{name}.key"
    openssl("genpkey", *KEY_SPECS[kind], "-out", str(key), cwd=directory)
    return key


def make_csr(directory: Path, key: Path, cn: str = "my-device") -> str:
    csr = directory / f"{key.stem}.csr"
    openssl(
        "req", "-new", "-key", str(key), "-subj", f"/CN={cn}/O=Someone Else",
        "-addext", "subjectAltName=DNS:evil.example", "-out", str(csr), cwd=directory,
    )  # fmt: skip
    return csr.read_text()


def tamper(pem: str) -> str:
    """The same CSR with the last byte (inside the signature) changed."""
    lines = pem.strip().splitlines()
    der = bytearray(base64.b64decode("".join(lines[1:-1])))
    der[-1] ^= 0x01
    body = base64.b64encode(bytes(der)).decode()
    chunks = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([lines[0], *chunks, lines[-1]]) + "\n"


@dataclass
class World:
    store: DeviceStore
    ca: CertificateAuthority
    ca_dir: Path
    work: Path
    service: CertificateService
    devices: DeviceService
    tenant: Tenant

    async def device(self, name: str, caller: Caller | None = None) -> Device:
        return await self.devices.create_in_profile(
            caller or self.tenant.live, name, None, None, []
        )

    async def recorded(self, device: Device) -> list[bytes]:
        return [
            c.fingerprint for c in await self.store.list_certificates(device.account_id, device.id)
        ]

    def verify(self, pem: str, name: str = "issued") -> str:
        path = self.work / f"{name}.pem"
        path.write_text(pem)
        return openssl(
            "verify", "-CAfile", str(self.ca_dir / CA_CERT_FILE), "-purpose", "sslclient",
            str(path), cwd=self.work,
        )  # fmt: skip


@pytest.fixture
async def world(store: DeviceStore, tmp_path: Path) -> World:
    ca_dir, work = tmp_path / "ca", tmp_path / "work"
    work.mkdir()
    ca = load_or_create_ca(ca_dir)
    tenant = await make_tenant(store, "Acme")
    return World(
        store=store,
        ca=ca,
        ca_dir=ca_dir,
        work=work,
        service=CertificateService(store, ca),
        devices=DeviceService(store),
        tenant=tenant,
    )


def check_issued(world: World, device: Device, issued: Issued) -> x509.Certificate:
    """What a client checks on a device certificate, and what must have been recorded."""
    record = issued.certificate
    cert = x509.load_pem_x509_certificate(record.pem.encode())
    uuid = render_uuid(device.id)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == uuid
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:uuid:{uuid}"]
    assert san.get_values_for_type(x509.DNSName) == []  # the CSR's own names are not copied
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == world.ca.certificate.subject
    assert record.device_id == device.id
    assert record.account_id == device.account_id
    assert record.serial == format(cert.serial_number, "X")
    assert re.fullmatch(r"[0-9A-F]+", record.serial)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert record.fingerprint == hashlib.sha256(der).digest()
    assert record.public_key_hash == public_key_hash(cert.public_key())  # type: ignore[arg-type]
    assert record.revoked_at is None
    assert record.issuer == "devreg"
    assert record.not_before == int(cert.not_valid_before_utc.timestamp() * 1_000_000)
    assert record.not_after == int(cert.not_valid_after_utc.timestamp() * 1_000_000)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=90) <= lifetime <= dt.timedelta(days=90, minutes=10)
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC) < cert.not_valid_after_utc
    assert world.verify(record.pem).strip().endswith(": OK")
    return cert


# --- issuing from a CSR -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048"])
async def test_csr_from_openssl_is_issued_verified_and_recorded(world: World, kind: str) -> None:
    device = await world.device("gw-1")
    key = make_key(world.work, kind)
    issued = await world.service.issue_from_csr(
        world.tenant.live, device.id, make_csr(world.work, key)
    )
    assert issued.private_key_pem is None
    cert = check_issued(world, device, issued)
    # The certificate is for the CSR's key: openssl sees the same public key in both.
    key_pub = openssl("pkey", "-in", str(key), "-pubout", cwd=world.work)
    cert_pub = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert cert_pub.decode() == key_pub
    assert await world.recorded(device) == [issued.certificate.fingerprint]
    assert await world.store.find_certificate(issued.certificate.fingerprint) == issued.certificate
    assert await world.service.certificates(world.tenant.live, device.id) == [issued.certificate]


@pytest.mark.parametrize(
    ("csr", "words"),
    [
        ("garbage", ["PEM"]),
        ("", ["PEM"]),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ["PKCS#10"],
        ),
    ],
    ids=["garbage", "empty", "bad DER"],
)
async def test_unreadable_csr_is_refused_and_nothing_recorded(
    world: World, csr: str, words: list[str]
) -> None:
    device = await world.device("gw-1")
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, device.id, csr)
    assert "csr" in caught.value.message
    for word in words:
        assert word in caught.value.message
    assert await world.recorded(device) == []


async def test_a_certificate_instead_of_a_csr_is_refused(world: World) -> None:
    device = await world.device("gw-1")
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, device.id, world.ca.pem.decode())
    assert "csr" in caught.value.message
    assert await world.recorded(device) == []


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048"])
async def test_csr_with_a_bad_signature_is_refused(world: World, kind: str) -> None:
    device = await world.device("gw-1")
    csr = tamper(make_csr(world.work, make_key(world.work, kind)))
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, device.id, csr)
    assert "signature" in caught.value.message
    assert await world.recorded(device) == []


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("rsa-1024", ["RSA", "1024", "2048"]),
        ("ec-p192", ["secp192r1", "P-256"]),
        ("ec-secp256k1", ["secp256k1", "P-256"]),
    ],
)
async def test_weak_or_unaccepted_keys_are_refused(
    world: World, kind: str, words: list[str]
) -> None:
    device = await world.device("gw-1")
    csr = make_csr(world.work, make_key(world.work, kind))
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, device.id, csr)
    for word in words:
        assert word in caught.value.message
    assert await world.recorded(device) == []


async def test_oversized_csr_is_refused(world: World) -> None:
    device = await world.device("gw-1")
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, device.id, "A" * 70_000)
    assert "too large" in caught.value.message
    assert await world.recorded(device) == []


# --- one key, one device ------------------------------------------------------------------


async def test_a_key_of_one_device_is_refused_for_another(world: World) -> None:
    first, second = await world.device("first"), await world.device("second")
    csr = make_csr(world.work, make_key(world.work, "ec-p256"))
    issued = await world.service.issue_from_csr(world.tenant.live, first.id, csr)
    with pytest.raises(InvalidInput) as caught:
        await world.service.issue_from_csr(world.tenant.live, second.id, csr)
    assert "another device" in caught.value.message
    assert await world.recorded(second) == []
    assert await world.recorded(first) == [issued.certificate.fingerprint]


async def test_a_key_held_in_another_account_is_refused_too(world: World) -> None:
    other = await make_tenant(world.store, "Globex")
    theirs = await world.device("theirs", other.live)
    mine = await world.device("mine")
    csr = make_csr(world.work, make_key(world.work, "rsa-2048"))
    await world.service.issue_from_csr(other.live, theirs.id, csr)
    with pytest.raises(InvalidInput):
        await world.service.issue_from_csr(world.tenant.live, mine.id, csr)
    assert await world.recorded(mine) == []


async def test_the_same_key_again_for_the_same_device_is_allowed(world: World) -> None:
    device = await world.device("gw-1")
    key = make_key(world.work, "ec-p256")
    first = await world.service.issue_from_csr(
        world.tenant.live, device.id, make_csr(world.work, key)
    )
    again = await world.service.issue_from_csr(
        world.tenant.live, device.id, make_csr(world.work, key, cn="renewed")
    )
    assert again.certificate.serial != first.certificate.serial
    assert again.certificate.fingerprint != first.certificate.fingerprint
    assert again.certificate.public_key_hash == first.certificate.public_key_hash
    check_issued(world, device, again)
    listed = await world.service.certificates(world.tenant.live, device.id)
    assert {c.id for c in listed} == {first.certificate.id, again.certificate.id}


# --- a key made here ------------------------------------------------------------------------


async def test_generate_key_returns_a_pkcs8_key_matching_the_certificate(world: World) -> None:
    device = await world.device("gw-1")
    issued = await world.service.issue_with_new_key(world.tenant.live, device.id)
    assert issued.private_key_pem is not None
    assert issued.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    cert = check_issued(world, device, issued)
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), password=None)
    assert public_key_hash(key.public_key()) == public_key_hash(cert.public_key())  # type: ignore[arg-type]
    # openssl agrees: the key's public half is the certificate's.
    key_path = world.work / "server-made.key"
    key_path.write_text(issued.private_key_pem)
    cert_path = world.work / "server-made.pem"
    cert_path.write_text(issued.certificate.pem)
    assert openssl("pkey", "-in", str(key_path), "-pubout", cwd=world.work) == openssl(
        "x509", "-in", str(cert_path), "-pubkey", "-noout", cwd=world.work
    )
    assert await world.recorded(device) == [issued.certificate.fingerprint]


async def test_each_generated_key_is_new(world: World) -> None:
    device = await world.device("gw-1")
    first = await world.service.issue_with_new_key(world.tenant.live, device.id)
    second = await world.service.issue_with_new_key(world.tenant.live, device.id)
    assert first.private_key_pem != second.private_key_pem
    assert first.certificate.public_key_hash != second.certificate.public_key_hash
    assert len(await world.recorded(device)) == 2


# --- whose device -------------------------------------------------------------------------


async def test_other_accounts_or_modes_or_deleted_device_is_not_found(world: World) -> None:
    other = await make_tenant(world.store, "Globex")
    device = await world.device("gw-1")
    csr = make_csr(world.work, make_key(world.work, "ec-p256"))
    for caller, device_id in (
        (other.live, device.id),
        (world.tenant.test, device.id),
        (world.tenant.live, new_id()),
    ):
        with pytest.raises(NotFound):
            await world.service.issue_from_csr(caller, device_id, csr)
        with pytest.raises(NotFound):
            await world.service.issue_with_new_key(caller, device_id)
        with pytest.raises(NotFound):
            await world.service.certificates(caller, device_id)
    assert await world.recorded(device) == []
    await world.devices.delete(world.tenant.live, device.id)
    with pytest.raises(NotFound):
        await world.service.issue_with_new_key(world.tenant.live, device.id)
    assert await world.recorded(device) == []
