"""Issue 12 items 5, 7 and 9, measured on real `devreg serve` processes (SQLite, loopback):
what an attacker gets from EST and the certificate and enrollment-secret API, what issuing
costs, and the device's mTLS GET/PUT. Prints one JSON object.

    .venv/bin/python -m benchmarks.issuance_abuse [--costs-only]

It speaks only HTTP, so it measures any revision: run it from another checkout with
`PYTHONPATH=<checkout>/src:<checkout> .venv/bin/python benchmarks/issuance_abuse.py` from
that checkout (the servers it starts then run its code).
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from tests.support.server import RunningServer, create_account, start_server

API = "/iot/api/v2"
EST = "/.well-known/est/"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def huge_exponent_key(bits: int = 3072) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent has ~`bits` bits (OpenSSL accepts any exponent up to
    3072-bit moduli): valid, and ~100 times dearer to verify with than e = 65537."""
    base = rsa.generate_private_key(65537, bits).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    while True:
        e = secrets.randbits(bits - 2) | 1 | (1 << (bits - 3))
        if math.gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q), public
    )
    return numbers.private_key()


def csr_der(key: PrivateKey, common_name: str = "device") -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def csr_pem(key: PrivateKey) -> str:
    return x509.load_der_x509_csr(csr_der(key)).public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Setup:
    def __init__(self, server: RunningServer, work: Path) -> None:
        self.server = server
        self.work = work
        self.account = create_account(server, "Bench")
        self.api = httpx.Client(
            base_url=server.base_url, headers={"x-api-key": self.account["live_key"]}, timeout=30
        )
        self.ca = str(server.data_dir / "ca.pem")
        self.count = 0

    def device(self) -> str:
        self.count += 1
        made = self.api.post(f"{API}/device", json={"device_identifier": f"d-{self.count}"})
        assert made.status_code == 201, made.text
        device_id: str = made.json()["id"]
        return device_id

    def files(self, cert_pem: str | bytes, private: PrivateKey | bytes) -> tuple[str, str]:
        self.count += 1
        cert = self.work / f"{self.count}.pem"
        key = self.work / f"{self.count}.key"
        cert.write_bytes(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
        key.write_bytes(private if isinstance(private, bytes) else key_pem(private))
        return str(cert), str(key)

    def tls(self, port: int | None, cert: tuple[str, str] | None) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=f"https://localhost:{port}", verify=context, timeout=30)

    def est(self, cert: tuple[str, str] | None = None) -> httpx.Client:
        return self.tls(self.server.est_port, cert)

    def mtls(self, cert: tuple[str, str]) -> httpx.Client:
        return self.tls(self.server.mtls_port, cert)


def enroll_body(der: bytes) -> dict[str, Any]:
    return {
        "content": base64.b64encode(der),
        "headers": {"content-type": "application/pkcs10"},
    }


def mean_ms(client: httpx.Client, path: str, count: int, **request: Any) -> float:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        client.post(path, **request)
        took.append(time.perf_counter() - started)
    return statistics.mean(took) * 1000


def item5(setup: Setup) -> dict[str, Any]:
    huge, normal = huge_exponent_key(), ec.generate_private_key(ec.SECP256R1())
    huge_csr, normal_csr = csr_der(huge), csr_der(normal)
    device_id = setup.device()
    out: dict[str, Any] = {}
    with setup.est() as est:
        wrong = {"auth": (device_id, "wrong-secret")}
        for _ in range(5):  # warm up the connection and the server
            est.post(EST + "simpleenroll", **enroll_body(normal_csr), **wrong)
        normal_ms = mean_ms(est, EST + "simpleenroll", 40, **enroll_body(normal_csr), **wrong)
        huge_ms = mean_ms(est, EST + "simpleenroll", 40, **enroll_body(huge_csr), **wrong)
        status = est.post(EST + "simpleenroll", **enroll_body(huge_csr), **wrong).status_code
    out["unauthenticated_enroll_ms"] = {
        "p256_csr": round(normal_ms, 3),
        "huge_e_csr": round(huge_ms, 3),
    }
    out["unauthenticated_huge_over_p256"] = round(huge_ms / normal_ms, 2)
    out["unauthenticated_huge_e_status"] = status
    out["healthz_p50_ms"] = healthz_under_attack(setup, device_id, huge_csr)
    e3 = rsa.generate_private_key(3, 2048)
    for name, key in (("e3", e3), ("huge_e", huge)):
        answer = setup.api.post(
            f"{API}/device/{setup.device()}/certificate", json={"csr": csr_pem(key)}
        )
        out[f"api_csr_{name}_status"] = answer.status_code
    return out


def healthz_under_attack(setup: Setup, device_id: str, huge_csr: bytes) -> dict[str, float]:
    def p50(seconds: float) -> float:
        took = []
        with httpx.Client(base_url=setup.server.base_url) as plain:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                plain.get("/healthz")
                took.append(time.perf_counter() - started)
                time.sleep(0.01)
        return round(statistics.median(took) * 1000, 3)

    quiet = p50(2)
    stop = threading.Event()

    def attack() -> None:
        with setup.est() as est:
            while not stop.is_set():
                est.post(EST + "simpleenroll", **enroll_body(huge_csr), auth=(device_id, "x"))

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    time.sleep(0.5)
    loud = p50(3)
    stop.set()
    for thread in attackers:
        thread.join()
    return {"quiet": quiet, "four_unauthenticated_attackers": loud}


def item7(setup: Setup, attempts: int = 60) -> dict[str, Any]:
    device_id = setup.device()
    issued = setup.api.post(f"{API}/device/{device_id}/certificate", json={"generate_key": True})
    assert issued.status_code == 201, issued.text
    stolen = issued.json()
    stolen_files = setup.files(stolen["pem"], stolen["private_key"].encode())
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(attempts)]
    minted: list[tuple[str, str, int]] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    with setup.est(stolen_files) as est:
        for key in keys:
            if time.monotonic() - started > 3:
                break
            answer = est.post(EST + "simpleenroll", **enroll_body(csr_der(key)))
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 200:
                (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer.content))
                cert_pem = cert.public_bytes(serialization.Encoding.PEM)
                minted.append((*setup.files(cert_pem, key), cert.serial_number))
    listed = setup.api.get(f"{API}/device/{device_id}/certificate").json()
    revoked = setup.api.put(
        f"{API}/certificate/{stolen['certificate_id']}/revoke", json={"reason": "keyCompromise"}
    )
    working = 0
    for cert_file, key_file, _ in minted:
        with setup.mtls((cert_file, key_file)) as device:
            working += device.get(f"{API}/device/{device_id}").status_code == 200
    crl = x509.load_der_x509_crl(httpx.get(setup.server.base_url + "/crl.der").content)
    in_crl = sum(crl.get_revoked_certificate_by_serial_number(s) is not None for _, _, s in minted)
    return {
        "est_enroll_with_the_stolen_certificate": statuses,
        "certificates_of_the_device": listed["total"],
        "revoke_keyCompromise_status": revoked.status_code,
        "minted": len(minted),
        "minted_still_accepted_over_mtls_after_revocation": working,
        "minted_in_crl": in_crl,
    }


def item9(setup: Setup, made: int = 25) -> dict[str, Any]:
    device_id = setup.device()
    first = setup.api.post(f"{API}/device/{device_id}/enrollment-secret").json()["secret"]
    setup.api.post(f"{API}/device/{device_id}/enrollment-secret")
    with setup.est() as est:
        key = ec.generate_private_key(ec.SECP256R1())
        old = est.post(EST + "simpleenroll", **enroll_body(csr_der(key)), auth=(device_id, first))
    revoke = setup.api.put(f"{API}/device/{device_id}/enrollment-secret/revoke")
    statuses: dict[int, int] = {}
    for _ in range(made):
        answer = setup.api.post(f"{API}/device/{setup.device()}/enrollment-secret")
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return {
        "enroll_with_the_replaced_secret_status": old.status_code,
        "revoke_route_status": revoke.status_code,
        f"secrets_made_for_{made}_devices_with_cap_20": statuses,
    }


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time: what a request cost the server, whatever else
    the machine runs meanwhile (latencies on a loaded machine measure the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cost:
    """Server CPU and client latency of `count` operations."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.took: list[float] = []

    def __enter__(self) -> Cost:
        self.cpu = cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = cpu_seconds(self.pid) - self.cpu

    def timed(self, started: float) -> None:
        self.took.append(time.perf_counter() - started)

    def summary(self) -> dict[str, float]:
        return {
            "server_cpu_ms_each": round(self.cpu * 1000 / len(self.took), 3),
            "median_ms": round(statistics.median(self.took) * 1000, 3),
        }


def costs(setup: Setup, count: int = 60) -> dict[str, Any]:
    pid = setup.server.process.pid
    requests = []
    for _ in range(count):
        body = {"csr": csr_pem(ec.generate_private_key(ec.SECP256R1()))}
        requests.append((setup.device(), body))
    with Cost(pid) as api:
        for device_id, body in requests:
            started = time.perf_counter()
            answer = setup.api.post(f"{API}/device/{device_id}/certificate", json=body)
            api.timed(started)
            assert answer.status_code == 201, answer.text
    enrollments = []
    for _ in range(count):
        device_id = setup.device()
        secret = setup.api.post(f"{API}/device/{device_id}/enrollment-secret").json()["secret"]
        enrollments.append((device_id, secret, csr_der(ec.generate_private_key(ec.SECP256R1()))))
    with setup.est() as est:
        est.get(EST + "cacerts")
        with Cost(pid) as enroll:
            for device_id, secret, der in enrollments:
                started = time.perf_counter()
                answer = est.post(
                    EST + "simpleenroll", **enroll_body(der), auth=(device_id, secret)
                )
                enroll.timed(started)
                assert answer.status_code == 200, answer.text
    device_id = setup.device()
    issued = setup.api.post(f"{API}/device/{device_id}/certificate", json={"generate_key": True})
    files = setup.files(issued.json()["pem"], issued.json()["private_key"].encode())
    hot: dict[str, Any] = {}
    with setup.mtls(files) as device:
        for _ in range(50):
            device.get(f"{API}/device/{device_id}")
        for method in ("GET", "PUT"):
            body = {"fields": []} if method == "PUT" else None
            with Cost(pid) as call:
                for _ in range(500):
                    started = time.perf_counter()
                    answer = device.request(method, f"{API}/device/{device_id}", json=body)
                    call.timed(started)
                    assert answer.status_code in (200, 201), answer.text
            hot[f"mtls_{method}"] = call.summary()
    return {
        "api_issue_from_csr": api.summary(),
        "est_enroll_with_secret": enroll.summary(),
        **hot,
    }


def main() -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "--costs-only" in sys.argv:  # what issuing and the device's calls cost, alone
            server = start_server(
                work / "costs", mtls=True, est=True, rate_limit=0, issuance_rate=0, access_log=0
            )
            try:
                print(json.dumps(costs(Setup(server, work))))
            finally:
                server.stop()
            return
        server = start_server(
            work / "abuse", mtls=True, est=True, max_enrollment_secrets=20, access_log=0
        )
        try:
            setup = Setup(server, work)
            results["item5"] = item5(setup)
            results["item7"] = item7(setup)
            results["item9"] = item9(setup)
        finally:
            server.stop()
        server = start_server(
            work / "costs", mtls=True, est=True, rate_limit=0, issuance_rate=0, access_log=0
        )
        try:
            results["costs"] = costs(Setup(server, work))
        finally:
            server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
