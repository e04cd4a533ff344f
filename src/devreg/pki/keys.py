"""Key policy and key identity: which public keys devreg accepts, and how one is named."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from devreg.core.errors import InvalidInput

MIN_RSA_BITS = 2048
# Verifying with a larger key costs more, on every request and every mTLS handshake.
MAX_RSA_BITS = 4096
# The only RSA public exponent accepted: a huge one (thousands of bits) makes each
# signature check cost ~100 times more, e = 3 is fragile; every CA library uses 65537.
RSA_EXPONENT = 65537
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def check_public_key(key: object, field: str = "csr") -> PublicKey:
    """EC P-256, P-384 or P-521, RSA 2048 to 4096 bits with exponent 65537, or Ed25519;
    anything else is refused. Cheap (no signature is checked), so it runs first."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise InvalidInput(
                f"EC curve {key.curve.name} is not accepted: use P-256, P-384 or P-521", field
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInput(
                f"RSA key of {key.key_size} bits is too weak: at least {MIN_RSA_BITS}", field
            )
        if key.key_size > MAX_RSA_BITS:
            raise InvalidInput(
                f"RSA key of {key.key_size} bits is too large: at most {MAX_RSA_BITS}", field
            )
        if key.public_numbers().e != RSA_EXPONENT:
            raise InvalidInput(
                f"RSA public exponent is not accepted: only {RSA_EXPONENT} is", field
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidInput(f"key type {type(key).__name__} is not accepted", field)


def public_key_hash(key: PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: the key's identity across certificates."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()
