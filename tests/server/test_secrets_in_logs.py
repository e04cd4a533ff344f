"""No secret ever reaches a log or a command's output: a real `devreg serve` with its access
log on and every logger at its lowest level (DEBUG, and uvicorn's TRACE) goes through
everything that carries a secret: account creation (CLI), logins right and wrong, bearer
tokens (good, forged, in a query string), API keys (dialect D), enrollment secrets made
and spent (EST), certificates with a server-made key (the private key is in the answer),
the device calling over mutual TLS, requests refused by the server layer; then the whole
server log and the commands' outputs are searched for every secret: API keys, tokens and
their signatures, Basic credentials, enrollment secrets, private key PEM bodies, the JWT
signing key, the CA's and the server's keys."""

from __future__ import annotations

import base64
import secrets
import socket
import sqlite3
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import devreg_env, run_cli, start_server

DEBUG_DEVREG = (sys.executable, "-m", "tests.support.debug_devreg")
API = "/iot/api/v2"
EST = "/.well-known/est"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def pem_body_lines(pem: str | bytes) -> list[str]:
    """The base64 lines of a PEM block: each one alone would leak part of the key."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def new_csr(device_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.CertificateSigningRequest]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
                    x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                ]
            )
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:uuid:{device_id}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, csr


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_no_secret_reaches_the_log_or_the_commands_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, None)
    outputs: dict[str, str] = {}  # what the commands printed, by command
    secrets_: dict[str, str] = {}  # everything that must appear in none of it

    done = run_cli(env, "init")
    assert done.returncode == 0, done.stderr
    outputs["init"] = done.stdout + done.stderr
    created = []
    for name in ("Acme", "Globex"):
        done = run_cli(env, "account", "create", "--name", name, "--json")
        assert done.returncode == 0, done.stderr
        outputs[f"account create {name} (stderr)"] = done.stderr  # stdout: the keys, once
        created.append(httpx.Response(200, content=done.stdout).json())
    acme, globex = created

    server = start_server(data, command=DEBUG_DEVREG, mtls=True, est=True, access_log=1)
    try:
        anon = httpx.Client(base_url=server.base_url, timeout=30)
        # --- logins: right, and wrong in every way ---------------------------------------
        tokens = {}
        for mode in ("live", "test"):
            answer = anon.get("/login", auth=(acme["account_id"], acme[f"{mode}_key"]))
            assert answer.status_code == 200, answer.text
            tokens[mode] = answer.json()["bearer_token"]
        wrong_key = "sk_live_" + secrets.token_urlsafe(32)
        for user, password in (
            (acme["account_id"], wrong_key),
            (acme["account_id"], globex["live_key"]),  # another account's key
            (globex["account_id"], acme["live_key"]),
            (acme["account_id"], acme["live_key"][8:]),  # the key without its prefix
            ("nobody", acme["test_key"]),
        ):
            assert anon.get("/login", auth=(user, password)).status_code == 403
        # --- tokens: used, forged, misplaced --------------------------------------------
        live = httpx.Client(
            base_url=server.base_url,
            headers={"authorization": f"Bearer {tokens['live']}"},
            timeout=30,
        )
        device = live.post("/devices", json={"reference_id": "logged"}).json()
        assert (
            live.patch(f"/devices/{device['id']}", json={"reference_id": "r2"}).status_code == 200
        )
        assert live.get("/devices", params={"token": tokens["test"]}).status_code == 400
        forged = tokens["live"][:-4] + ("AAAA" if not tokens["live"].endswith("AAAA") else "BBBB")
        for bad in (forged, tokens["live"] + "x", "not-a-token"):
            response = anon.get("/devices", headers={"authorization": f"Bearer {bad}"})
            assert response.status_code == 403
        # --- dialect D with the API key, a certificate with a server-made key ------------
        api = httpx.Client(
            base_url=server.base_url + API, headers={"x-api-key": acme["live_key"]}, timeout=30
        )
        assert (
            anon.get(f"{API}/device", headers={"x-api-key": wrong_key.replace("live", "test")})
        ).status_code == 401
        made = api.post("/device", json={"device_identifier": "d1"})
        assert made.status_code == 201, made.text
        device_id = made.json()["id"]
        issued = api.post(f"/device/{device_id}/certificate", json={"generate_key": True})
        assert issued.status_code == 201, issued.text
        server_made_key = issued.json()["private_key"]
        csr_key, csr = new_csr(device_id)
        from_csr = api.post(
            f"/device/{device_id}/certificate",
            json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode()},
        )
        assert from_csr.status_code == 201, from_csr.text
        # --- the device over mutual TLS, with the server-made key ------------------------
        (tmp_path / "device.pem").write_text(issued.json()["pem"])
        (tmp_path / "device.key").write_text(server_made_key)
        mtls = ssl.create_default_context(cafile=str(data / "ca.pem"))
        mtls.load_cert_chain(tmp_path / "device.pem", tmp_path / "device.key")
        with httpx.Client(verify=mtls, timeout=30) as device_client:
            url = f"https://localhost:{server.mtls_port}{API}/device/{device_id}"
            assert device_client.get(url).status_code == 200
        # --- EST: an enrollment secret made, spent, then wrong and reused ----------------
        enroll_device = api.post("/device", json={"device_identifier": "d2"}).json()["id"]
        made_secret = api.post(f"/device/{enroll_device}/enrollment-secret")
        assert made_secret.status_code == 201, made_secret.text
        enrollment_secret = made_secret.json()["secret"]
        est_key, est_csr = new_csr(enroll_device)
        body = base64.b64encode(est_csr.public_bytes(serialization.Encoding.DER))
        wrong_secret = secrets.token_urlsafe(24)
        est_ca = ssl.create_default_context(cafile=str(data / "ca.pem"))
        with httpx.Client(verify=est_ca, timeout=30) as est:
            url = f"https://localhost:{server.est_port}{EST}/simpleenroll"
            headers = {"content-type": "application/pkcs10"}
            for secret, status in (
                (wrong_secret, 401),
                (enrollment_secret, 200),
                (enrollment_secret, 401),
            ):
                answer = est.post(url, content=body, headers=headers, auth=(enroll_device, secret))
                assert answer.status_code == status, answer.text
        # --- refused by the server layer: a huge head carrying a token -------------------
        with socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))) as raw:
            raw.sendall(
                b"GET /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + tokens["live"].encode()
                + b"\r\nX-Pad: "
                + b"p" * 40_000
                + b"\r\n\r\n"
            )
            assert raw.recv(100).startswith(b"HTTP/1.1 431 ")
        marker = f"/end-of-test-{secrets.token_hex(6)}"
        assert anon.get(marker).status_code == 404
        for client in (anon, live, api):
            client.close()
    finally:
        server.stop()

    done = run_cli(env, "export", "devices", "--account", acme["account_id"])
    assert done.returncode == 0, done.stderr
    outputs["export"] = done.stdout + done.stderr
    # Operators (cli/users.py), with every logger at DEBUG: the passwords go in on stdin.
    passwords = {"operator password": secrets.token_urlsafe(16), "new operator password": ""}
    passwords["new operator password"] = secrets.token_urlsafe(16)
    for args, password in (
        (("create", "--email", "ops@example.com", "--role", "admin", "--json"),
         passwords["operator password"]),
        (("set-password", "ops@example.com"), passwords["new operator password"]),
    ):  # fmt: skip
        ran = subprocess.run(
            [*DEBUG_DEVREG, "user", *args], env=env, input=password + "\n",
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        outputs[f"user {args[0]}"] = ran.stdout + ran.stderr
    with sqlite3.connect(data / "devreg.sqlite3") as db:
        (password_hash,) = db.execute("SELECT password_hash FROM operators").fetchone()
        changes = "\n".join(str(row) for row in db.execute("SELECT * FROM change_log"))
    outputs["change log"] = changes
    log = server.log()
    assert "debug logging on" in log and marker in log  # the log is complete and at DEBUG
    for fragment in (
        '"GET /login" 200',
        '"GET /login" 403',
        f'"GET {API}/device/{device_id}" 200',  # the device, over mutual TLS
        f'"POST {EST}/simpleenroll" 200',
        f'"POST {EST}/simpleenroll" 401',
        '"GET /devices" 431',
    ):
        assert fragment in log, fragment

    # --- every secret, and where it must not be ------------------------------------------
    for name, account in (("acme", acme), ("globex", globex)):
        for mode in ("live", "test"):
            key = account[f"{mode}_key"]
            secrets_[f"{name} {mode} key"] = key
            secrets_[f"{name} {mode} key, without its prefix"] = key[8:]
            secrets_[f"{name} {mode} key, in Basic"] = basic(account["account_id"], key)
    secrets_["wrong key"] = wrong_key
    secrets_["wrong key, in Basic"] = basic(acme["account_id"], wrong_key)
    for mode, token in tokens.items():
        secrets_[f"{mode} token"] = token
        secrets_[f"{mode} token's signature"] = token.rsplit(".", 1)[1]
    secrets_["forged token"] = forged
    secrets_["enrollment secret"] = enrollment_secret
    secrets_["enrollment secret, in Basic"] = basic(enroll_device, enrollment_secret)
    secrets_["wrong enrollment secret"] = wrong_secret
    secrets_["JWT signing key"] = (data / "jwt-signing.key").read_text().strip()
    secrets_.update(passwords)
    secrets_["operator password hash"] = password_hash
    secrets_["operator password hash's digest"] = password_hash.rsplit("$", 1)[1]
    secrets_["TOTP key"] = (data / "totp.key").read_text().strip()
    keys = {
        "server-made device key": server_made_key,
        "CSR key": private_pem(csr_key).decode(),
        "EST device key": private_pem(est_key).decode(),
        "CA key": (data / "ca.key").read_text(),
        "server TLS key": (data / "server.key").read_text(),
    }
    for name, pem in keys.items():
        for number, line in enumerate(pem_body_lines(pem)):
            if len(line) >= 16:  # a line's worth of key, not a short tail
                secrets_[f"{name}, PEM line {number}"] = line
    assert len(secrets_) >= 35

    places = {"server log": log, **outputs}
    leaks = [
        f"the {secret_name} is in the {place}"
        for secret_name, secret in secrets_.items()
        for place, text in places.items()
        if secret in text
    ]
    assert leaks == []
