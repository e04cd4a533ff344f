"""Key policy and key identity: which public keys devreg accepts, and how one is named."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from devreg.core.errors import InvalidInput

MIN_RSA_BITS = 2048
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def check_public_key(key: object) -> PublicKey:
    """EC P-256 or larger, RSA 2048 or larger, or Ed25519; anything else is refused."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise InvalidInput(
                f"EC curve {key.curve.name} is not accepted: use P-256, P-384 or P-521", "csr"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInput(
                f"RSA key of {key.key_size} bits is too weak: at least {MIN_RSA_BITS}", "csr"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidInput(f"key type {type(key).__name__} is not accepted", "csr")


def public_key_hash(key: PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: the key's identity across certificates."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()
