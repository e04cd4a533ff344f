"""What devreg's TLS listeners offer, as `sslscan` sees it from outside, and whether that is
only strong TLS: TLS 1.2 and 1.3 and nothing older, forward-secret AEAD suites of at least
128 bits (no NULL, EXPORT, RC4, DES/3DES, MD5, anonymous or CBC suites), key exchange
groups of at least 112-bit strength, no compression, no insecure renegotiation, no
Heartbleed.

    python -m tests.support.tls_scan                 # start `devreg serve` on a temporary
                                                      # data dir, scan its mTLS and EST ports
    python -m tests.support.tls_scan HOST:PORT ...    # scan these

Exit status 1 when anything is wrong, every problem named (`.ci/run` runs it; the same
checks run in tests/tls/test_tls_scan.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ALLOWED_PROTOCOLS = {"TLSv1.2", "TLSv1.3"}
# TLS 1.2 suites: ECDHE or DHE key exchange and an AEAD cipher, by OpenSSL's names.
TLS12_GOOD = re.compile(
    r"^(ECDHE|DHE)-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$"
)
# TLS 1.3 suites (all AEAD): every standard one but CCM_8 (a 64-bit tag).
TLS13_GOOD = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
}
WEAK_NAME = re.compile(r"NULL|EXP|RC4|RC2|DES|MD5|ADH|AECDH|anon|IDEA|SEED|PSK|SRP|CBC", re.I)
MIN_BITS = 128
# Key exchange groups: OpenSSL 3 offers ffdhe2048 in TLS 1.3 (chosen only by a client that
# offers no elliptic curve) and Python 3.11's ssl cannot narrow the list to several groups
# (set_ecdh_curve leaves exactly one, which costs every client preferring another a
# HelloRetryRequest, or locks out P-256-only or X25519-only devices): 112 bits, NIST's
# floor until 2030, is the bar here.
MIN_GROUP_BITS = 112


@dataclass
class Cipher:
    protocol: str  # TLSv1.2, TLSv1.3, ...
    name: str
    bits: int
    strength: str


@dataclass
class Scan:
    target: str
    protocols: dict[str, bool] = field(default_factory=dict)  # "TLSv1.0" -> offered
    ciphers: list[Cipher] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)  # (name, security bits)
    compression: bool = False
    renegotiation_insecure: bool = False
    heartbleed: list[str] = field(default_factory=list)  # vulnerable protocol versions

    @property
    def offered(self) -> set[str]:
        return {name for name, on in self.protocols.items() if on}


def _protocol_name(kind: str, version: str) -> str:
    return f"SSLv{version}" if kind == "ssl" else f"TLSv{version}"


def parse(xml: str, target: str = "") -> Scan:
    """sslscan's `--xml=-` document (2.x) for one host."""
    document = xml[xml.index("<?xml") :] if "<?xml" in xml else xml
    root = ET.fromstring(document)  # noqa: S314 (our own sslscan run's output)
    test = root.find("ssltest")
    if test is None:
        error = root.find("error")
        raise RuntimeError(
            f"sslscan found no TLS service at {target}: {xml[-500:]}"
            if error is None
            else error.text
        )
    scan = Scan(target or f"{test.get('host')}:{test.get('port')}")
    for node in test.iter("protocol"):
        name = _protocol_name(node.get("type", ""), node.get("version", ""))
        scan.protocols[name] = node.get("enabled") == "1"
    for node in test.iter("cipher"):
        scan.ciphers.append(
            Cipher(
                node.get("sslversion", ""),
                node.get("cipher", ""),
                int(node.get("bits", "0")),
                node.get("strength", ""),
            )
        )
    for node in test.iter("group"):
        scan.groups.append((node.get("name", ""), int(node.get("bits", "0"))))
    for node in test.iter("compression"):
        scan.compression = node.get("supported") == "1"
    for node in test.iter("renegotiation"):
        scan.renegotiation_insecure = node.get("supported") == "1" and node.get("secure") != "1"
    for node in test.iter("heartbleed"):
        if node.get("vulnerable") == "1":
            scan.heartbleed.append(node.get("sslversion", ""))
    return scan


def problems(scan: Scan) -> list[str]:
    """Everything `scan` shows that a strong TLS configuration must not offer."""
    found = []
    if not scan.protocols:
        found.append("no protocol was tested")
    for name in sorted(scan.offered - ALLOWED_PROTOCOLS):
        found.append(f"{name} is offered")
    for name in sorted(ALLOWED_PROTOCOLS - scan.offered):
        found.append(f"{name} is not offered")
    for name in sorted(scan.offered & ALLOWED_PROTOCOLS):
        if not any(cipher.protocol == name for cipher in scan.ciphers):
            found.append(f"no {name} cipher suite was seen (a client certificate needed?)")
    for cipher in scan.ciphers:
        label = f"{cipher.protocol} {cipher.name} ({cipher.bits} bits, {cipher.strength})"
        if cipher.protocol not in ALLOWED_PROTOCOLS:
            found.append(f"{label}: offered on a protocol that must be off")
        elif cipher.bits < MIN_BITS:
            found.append(f"{label}: fewer than {MIN_BITS} bits")
        elif WEAK_NAME.search(cipher.name):
            found.append(f"{label}: a weak cipher suite")
        elif cipher.protocol == "TLSv1.2" and not TLS12_GOOD.match(cipher.name):
            found.append(f"{label}: not a forward-secret AEAD suite")
        elif cipher.protocol == "TLSv1.3" and cipher.name not in TLS13_GOOD:
            found.append(f"{label}: not a standard TLS 1.3 suite")
        elif cipher.strength not in ("strong", "acceptable"):
            found.append(f"{label}: sslscan rates it {cipher.strength!r}")
    for name, bits in scan.groups:
        if bits < MIN_GROUP_BITS:
            found.append(f"key exchange group {name}: {bits} bits")
    if scan.compression:
        found.append("TLS compression is on (CRIME)")
    if scan.renegotiation_insecure:
        found.append("insecure renegotiation is supported")
    for version in scan.heartbleed:
        found.append(f"vulnerable to Heartbleed over {version}")
    return [f"{scan.target}: {problem}" for problem in found]


def sslscan(
    host: str, port: int, sni: str = "localhost", client: tuple[Path, Path] | None = None
) -> Scan:
    """Run the sslscan binary against host:port. A listener that requires a client
    certificate needs `client` (certificate and key files): sslscan completes each TLS 1.2
    handshake, so without one it sees no TLS 1.2 suite there."""
    binary = shutil.which("sslscan")
    if binary is None:
        raise FileNotFoundError("sslscan is not installed (apt-get install -y sslscan)")
    target = f"{host}:{port}"
    options = [f"--certs={client[0]}", f"--pk={client[1]}"] if client else []
    done = subprocess.run(
        [binary, "--xml=-", "--no-colour", f"--sni-name={sni}", *options, target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sslscan {target} failed ({done.returncode}): {done.stderr[-1000:]}")
    return parse(done.stdout, target)


def scan_devreg(directory: Path) -> list[Scan]:
    """Start `devreg serve` (its data in `directory`) and scan its mTLS listener, with a
    client certificate from devreg's CA, and its EST listener."""
    from devreg.pki.ca import load_or_create_ca
    from tests.support.server import start_server
    from tests.tls.helpers import issue

    server = start_server(directory / "data", mtls=True, est=True, rate_limit=0)
    try:
        assert server.mtls_port and server.est_port
        client = issue(load_or_create_ca(server.data_dir), directory / "client", "sslscan")
        return [
            sslscan("127.0.0.1", server.mtls_port, client=(client.cert_path, client.key_path)),
            sslscan("127.0.0.1", server.est_port),
        ]
    finally:
        server.stop()


def summary(scan: Scan) -> str:
    protocols = ", ".join(sorted(scan.offered)) or "none"
    suites = ", ".join(f"{c.name} ({c.bits})" for c in scan.ciphers)
    groups = ", ".join(name for name, _ in scan.groups)
    return f"{scan.target}: {protocols}; suites: {suites}; groups: {groups}"


def main(argv: list[str]) -> int:
    if argv:
        targets = [(text.rpartition(":")[0], int(text.rpartition(":")[2])) for text in argv]
        scans = [sslscan(host, port) for host, port in targets]
    else:
        with tempfile.TemporaryDirectory() as directory:
            scans = scan_devreg(Path(directory))
    found = [problem for scan in scans for problem in problems(scan)]
    for scan in scans:
        print(summary(scan))
    for problem in found:
        print("FAIL:", problem)
    print("TLS scan:", "FAILED" if found else f"OK ({len(scans)} listeners)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
