"""DigiCert's client-authentication pages: the device, with its own certificate on the
client-auth host, reads and updates its record and renews its certificate."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conformance.conftest import Vendors
from tests.dialect_d.helpers import (
    DEVICE_KEYS,
    FLAGS,
    UUID,
    assert_errors,
    check_device,
)

NO_SUCH = "00000000-0000-4000-8000-000000000000"


def renewal_csr(directory: Path, device_id: str) -> str:
    """A CSR for a new key with the subject and name devreg's certificates carry (RFC
    7030's rule: a renewal keeps them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / f"{device_id}-new.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]
    )
    name = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:uuid:{device_id}")])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(name, critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_client_auth_get_as_openwifi_reads_it(vendors: Vendors) -> None:
    """OpenWiFi's firmware GETs its record and uses the value of the field named
    "Redirector"."""
    made = vendors.d.live.post(
        "/device-profile",
        json={
            "name": "AP",
            "fields": [{"name": "Redirector", "mandatory": True}],
            **{flag: True for flag in FLAGS},
        },
    )
    assert made.status_code == 201, made.text
    profile = made.json()
    device = vendors.d.live.post(
        "/device",
        json={
            "division_id": profile["division"]["id"],
            "device_identifier": "04:f8:f8:fc:35:99",
            "device_profile_id": profile["id"],
            "fields": [{"id": profile["fields"][0]["id"], "value": "gw.example.net:15002"}],
        },
    ).json()
    with vendors.device_client(device["id"]) as client:
        answer = client.get(f"/device/{device['id']}")
    assert answer.status_code == 200, answer.text
    record = check_device(answer.json())
    redirector = next(f["value"] for f in record["fields"] if f["name"] == "Redirector")
    assert redirector == "gw.example.net:15002"


def test_client_auth_update_as_seed_003(vendors: Vendors) -> None:
    profile = vendors.profile(device_api=True)
    device = vendors.device(profile, "Old Device Identifier")
    mandatory, optional = (field["id"] for field in profile["fields"])
    body = {
        "device_identifier": "New Device Identifier",
        "fields": [
            {"id": mandatory, "value": "updated mandatory value"},
            {"id": optional, "value": "updated optional value"},
        ],
    }
    with vendors.device_client(device["id"]) as client:
        answer = client.put(
            f"/device/{device['id']}", json=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 201, answer.text
        record = check_device(answer.json())
        assert record["device_identifier"] == "New Device Identifier"
        assert [f["value"] for f in record["fields"]] == [
            "updated mandatory value",
            "updated optional value",
        ]
        # another id, existing or not, is refused: which ids exist is not the device's to
        # learn (seed 003 shows 400 entity_not_found for an id that does not exist)
        other = client.put(f"/device/{NO_SUCH}", json=body)
        assert_errors(other, 403, "access_denied", mentions=["does not belong"])


def test_client_auth_renew_with_a_csr(vendors: Vendors) -> None:
    profile = vendors.profile(device_api=True)
    device = vendors.device(profile, "renewing")
    csr = renewal_csr(vendors.directory, device["id"])
    with vendors.device_client(device["id"]) as client:
        answer = client.post(f"/device/{device['id']}/renew", json={"csr": csr})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"certificate_request_id", "status", "result", "certificate_id", "pem"}
    assert body["status"] == "AUTO_APPROVED" and body["result"] == "SUCCESS"
    assert UUID.match(body["certificate_request_id"]) and UUID.match(body["certificate_id"])
    (leaf, *_) = x509.load_pem_x509_certificates(body["pem"].encode())
    assert leaf.not_valid_after_utc > leaf.not_valid_before_utc
    assert set(vendors.d.live.get(f"/device/{device['id']}").json()) == DEVICE_KEYS


def test_renew_attributes_are_refused_by_name(vendors: Vendors) -> None:
    """DigiCert's example body also sets subject and device attributes: devreg refuses
    them by name (enrollment profiles, #16), and issues nothing."""
    profile = vendors.profile(device_api=True)
    device = vendors.device(profile, "attributes")
    csr = renewal_csr(vendors.directory, device["id"])
    body = {
        "csr": csr,
        "certificate_profile_attributes": [
            {"id": "subject.organization_name", "value": "custom org name"}
        ],
        "device_attributes": [{"id": "party-no", "value": "1"}],
    }
    with vendors.device_client(device["id"]) as client:
        answer = client.post(f"/device/{device['id']}/renew", json=body)
    assert_errors(answer, 400, "invalid_input", mentions=["certificate_profile_attributes"])
    listed = vendors.d.live.get(f"/device/{device['id']}/certificate").json()
    assert listed["total"] == 1  # only the certificate the client above was given
