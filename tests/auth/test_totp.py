"""TOTP (auth/totp.py) against RFC 6238's published test vectors (Appendix B), its window
and the key file that seals the stored secrets."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.exceptions import InvalidTag

from devreg.auth import totp

SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# RFC 6238 Appendix B: time, then the 8-digit code for SHA-1, SHA-256, SHA-512.
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("time", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc_6238_vectors(time: int, sha1: str, sha256: str, sha512: str) -> None:
    for digest, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert totp.totp(SEEDS[digest], time, digits=8, digest=digest) == expected


@pytest.mark.parametrize(("time", "sha1"), [(v[0], v[1]) for v in VECTORS])
def test_six_digits_are_the_last_six(time: int, sha1: str) -> None:
    assert totp.totp(SEEDS["sha1"], time) == sha1[-6:]


def test_one_step_either_side_is_accepted_and_no_more() -> None:
    secret, now = SEEDS["sha1"], 1111111111
    step = totp.step_at(now)
    for offset in (-1, 0, 1):
        code = totp.hotp(secret, step + offset)
        assert totp.matching_step(secret, code, now) == step + offset
    for offset in (-2, 2):
        assert totp.matching_step(secret, totp.hotp(secret, step + offset), now) is None
    assert totp.matching_step(secret, "", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None


def test_the_uri_carries_the_secret_in_base32() -> None:
    secret = totp.new_secret()
    assert len(secret) == 20
    uri = urlparse(totp.otpauth_uri(secret, "ann@example.com"))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    encoded = query["secret"][0]
    assert base64.b32decode(encoded + "=" * (-len(encoded) % 8)) == secret
    assert (query["digits"], query["period"], query["algorithm"]) == (["6"], ["30"], ["SHA1"])


def test_the_key_file_is_private_and_kept(tmp_path: Path) -> None:
    box = totp.load_or_create_totp_key(tmp_path)
    path = tmp_path / totp.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = box.seal(b"secret", b"op-1")
    assert b"secret" not in sealed
    again = totp.load_or_create_totp_key(tmp_path)  # the same key, read back
    assert again.open(sealed, b"op-1") == b"secret"
    with pytest.raises(InvalidTag):  # bound to its operator: not movable to another
        again.open(sealed, b"op-2")
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind
