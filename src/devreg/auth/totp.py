"""TOTP (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, 30-second steps, a code
accepted one step either side; the caller keeps the last step used so each is used once.
And the key that encrypts the stored secrets (`totp.key` in the data directory, 0600)."""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devreg.auth.tokens import load_or_create_secret

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now (clock drift, a code typed late)
SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends
KEY_FILE = "totp.key"


def hotp(secret: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    mac = hmac.new(secret, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(unix_seconds: float) -> int:
    return int(unix_seconds // STEP_SECONDS)


def totp(secret: bytes, unix_seconds: float, digits: int = DIGITS, digest: str = "sha1") -> str:
    return hotp(secret, step_at(unix_seconds), digits, digest)


def matching_step(secret: bytes, code: str, unix_seconds: float) -> int | None:
    """The step within the window whose code `code` is (compared in constant time), or
    None. The caller refuses a step at or before the last one it accepted."""
    now = step_at(unix_seconds)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step).encode(), code.strip().encode()):
            found = step
    return found


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def otpauth_uri(secret: bytes, account: str, issuer: str = "devreg") -> str:
    """What an authenticator app scans (Key Uri Format): the secret in base32."""
    encoded = base64.b32encode(secret).decode().rstrip("=")
    label = quote(f"{issuer}:{account}")
    return (
        f"otpauth://totp/{label}?secret={encoded}&issuer={quote(issuer)}"
        f"&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )


class SecretBox:
    """AES-256-GCM with the data directory's key; a sealed value is nonce + ciphertext,
    bound to what it belongs to (`context`: the operator's id), so it cannot be moved."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plain: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plain, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], context)


def load_or_create_totp_key(data_dir: Path) -> SecretBox:
    """The key, made on first use with mode 0600 and never rewritten."""
    return SecretBox(load_or_create_secret(data_dir, KEY_FILE))
