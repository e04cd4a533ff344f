"""Bearer tokens: HS256 JWTs from /login, and the signing key kept in the data directory."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from devreg.auth.tokens import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    MAX_TOKEN_LENGTH,
    SIGNING_KEY_FILE,
    TOKEN_TTL_SECONDS,
    TokenSigner,
    load_or_create_signing_key,
    parse_bearer,
    signing_key_id,
)
from devreg.core.errors import Unauthenticated
from devreg.core.ids import new_id, render_uuid
from devreg.core.records import Actor, ActorKind, ApiKey, Caller

KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
KID = {"kid": signing_key_id(KEY)}  # the header naming KEY, as devreg's own tokens carry


def api_key(live_mode: bool = True) -> ApiKey:
    return ApiKey(
        id=new_id(),
        account_id=new_id(),
        live_mode=live_mode,
        key_hash=b"\x00" * 32,
        prefix="sk_live_abcd",
        created_at=0,
    )


def now() -> int:
    return int(time.time())


def claims_for(key: ApiKey, **overrides: object) -> dict[str, object]:
    issued = now()
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "acc_" + key.account_id.hex(),
        "kid": key.id.hex(),
        "live_mode": key.live_mode,
        "iat": issued,
        "exp": issued + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def refused(signer: TokenSigner, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        signer.verify(token)
    return caught.value.message


@pytest.mark.parametrize("live_mode", [True, False])
def test_issue_then_verify_gives_the_caller(live_mode: bool) -> None:
    signer = TokenSigner(KEY)
    key = api_key(live_mode)
    caller = signer.verify(signer.issue(key, now()))
    assert caller == Caller(
        account_id=key.account_id,
        live_mode=live_mode,
        credential_id="key:" + key.id.hex(),
        actor=Actor(ActorKind.BEARER_TOKEN, render_uuid(key.id)),
        request_id="",
        key_id=key.id,
    )


def test_token_is_hs256_with_an_hour_of_life() -> None:
    issued = now()
    token = TokenSigner(KEY).issue(api_key(), issued)
    assert jwt.get_unverified_header(token)["alg"] == "HS256" == ALGORITHM
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == TOKEN_TTL_SECONDS == 3600
    assert claims["iat"] == issued


def test_expired_token_is_refused_as_expired() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(api_key(), now() - TOKEN_TTL_SECONDS - 60)
    assert "expired" in refused(signer, token)


def test_token_signed_with_another_key_is_refused() -> None:
    forged = TokenSigner(OTHER_KEY).issue(api_key(), now())
    message = refused(TokenSigner(KEY), forged)
    assert "not valid" in message


def test_alg_none_token_is_refused() -> None:
    key = api_key()
    unsigned = jwt.encode(claims_for(key), "", algorithm="none")
    assert jwt.get_unverified_header(unsigned)["alg"] == "none"
    assert "not valid" in refused(TokenSigner(KEY), unsigned)
    # also with the signature part of a real token glued on
    real = TokenSigner(KEY).issue(key, now())
    glued = unsigned.rstrip(".") + "." + real.rsplit(".", 1)[1]
    assert "not valid" in refused(TokenSigner(KEY), glued)


def _forge(header: dict[str, object], claims: dict[str, object], sign: object) -> str:
    """A token with exactly this header, its signature made by `sign(signing_input)`."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature: bytes = sign(signing_input.encode())  # type: ignore[operator]
    return signing_input + "." + _b64(signature)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_spelling_is_refused(alg: str) -> None:
    claims = claims_for(api_key())
    for signature in (b"", hmac.new(KEY, b"x", hashlib.sha256).digest()):
        token = _forge({"alg": alg, "typ": "JWT"}, claims, lambda _, s=signature: s)
        assert "not valid" in refused(TokenSigner(KEY), token)


# The forger's HS384/HS512 tokens use our 32-byte key: PyJWT warns it is short for them.
SHORT_KEY_WARNING = "ignore::jwt.warnings.InsecureKeyLengthWarning"


@pytest.mark.filterwarnings(SHORT_KEY_WARNING)
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_another_hmac_algorithm_with_the_right_key_is_refused(alg: str) -> None:
    """Only HS256 is accepted, even when the signature is right for the named algorithm."""
    token = jwt.encode(claims_for(api_key()), KEY, algorithm=alg)
    assert jwt.decode(token, KEY, algorithms=[alg], audience=AUDIENCE)  # a valid token...
    assert "not valid" in refused(TokenSigner(KEY), token)  # ...of the wrong algorithm


def test_rs256_key_confusion_is_refused() -> None:
    """The classic confusion: a token claiming RS256 whose "signature" is an HMAC made with
    the key the verifier holds (here the HMAC secret, there an RSA public key), and a real
    RS256 signature by a key of the attacker's; neither is accepted."""
    claims = claims_for(api_key())
    header = {"alg": "RS256", "typ": "JWT"}
    for digest in (hashlib.sha256, hashlib.sha512):
        confused = _forge(header, claims, lambda data, d=digest: hmac.new(KEY, data, d).digest())
        assert "not valid" in refused(TokenSigner(KEY), confused)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = jwt.encode(claims, attacker, algorithm="RS256")
    assert "not valid" in refused(TokenSigner(KEY), signed)
    # ...nor when the HMAC key given to the verifier is that attacker's public key PEM
    public_pem = attacker.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_with_pem = _forge(
        {"alg": "HS256", "typ": "JWT"},
        claims,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    assert "not valid" in refused(TokenSigner(KEY), hs_with_pem)


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_asymmetric_algorithms_are_refused(alg: str) -> None:
    if alg == "ES256":
        key: object = ec.generate_private_key(ec.SECP256R1())
    elif alg == "PS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(claims_for(api_key()), key, algorithm=alg)  # type: ignore[arg-type]
    assert "not valid" in refused(TokenSigner(KEY), token)


def test_header_tricks_do_not_change_the_key_or_the_algorithm() -> None:
    """jwk / jku / x5u / kid headers are not used to pick a key: a token signed with an
    embedded or pointed-to key is refused; a right signature with extra headers passes."""
    claims = claims_for(api_key())
    attacker_key = b"attacker-secret-" * 2
    for extra in (
        {"jwk": {"kty": "oct", "k": _b64(attacker_key)}},
        {"jku": "http://attacker.example/keys"},
        {"x5u": "http://attacker.example/cert"},
        {"kid": "../../../../dev/null"},
    ):
        forged = _forge(
            {"alg": "HS256", "typ": "JWT", **extra},
            claims,
            lambda data: hmac.new(attacker_key, data, hashlib.sha256).digest(),
        )
        assert "not valid" in refused(TokenSigner(KEY), forged)
    genuine = jwt.encode(claims, KEY, algorithm="HS256", headers={**KID, "jku": "http://x/"})
    assert TokenSigner(KEY).verify(genuine)


@pytest.mark.filterwarnings(SHORT_KEY_WARNING)
def test_verification_pins_the_algorithm_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """What PyJWT is asked: exactly ["HS256"], whatever the token's header says."""
    seen: list[object] = []
    real_decode = jwt.decode_complete

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("algorithms"))
        return real_decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode_complete", spy)
    signer = TokenSigner(KEY)
    signer.verify(signer.issue(api_key(), now()))
    refused(signer, jwt.encode(claims_for(api_key()), KEY, algorithm="HS512"))
    assert seen == [["HS256"], ["HS256"]]


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "kid", "iss", "aud", "live_mode"])
def test_hs256_token_with_a_missing_claim_is_refused(missing: str) -> None:
    claims = claims_for(api_key())
    del claims[missing]
    token = jwt.encode(claims, KEY, algorithm="HS256", headers=KID)
    assert refused(TokenSigner(KEY), token)


@pytest.mark.parametrize(
    "override",
    [
        {"sub": "dev_" + "00" * 16},
        {"sub": "acc_not-hex"},
        {"sub": 12},
        {"kid": 7},
        {"live_mode": "true"},
        {"live_mode": 1},
    ],
)
def test_hs256_token_with_malformed_claims_is_refused(override: dict[str, object]) -> None:
    token = jwt.encode(claims_for(api_key(), **override), KEY, algorithm="HS256", headers=KID)
    assert refused(TokenSigner(KEY), token)


@pytest.mark.parametrize("audience", ["devreg:dialect-d", "someone-else", ["other"]])
def test_wrong_audience_is_refused(audience: object) -> None:
    token = jwt.encode(claims_for(api_key(), aud=audience), KEY, algorithm="HS256", headers=KID)
    assert "not valid" in refused(TokenSigner(KEY), token)


def test_wrong_issuer_is_refused() -> None:
    token = jwt.encode(claims_for(api_key(), iss="elsewhere"), KEY, algorithm="HS256", headers=KID)
    assert "not valid" in refused(TokenSigner(KEY), token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_tampered_payload_is_refused() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(api_key(live_mode=False), now())
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["live_mode"] = True  # a test key trying to reach live devices
    tampered = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert "not valid" in refused(signer, tampered)
    other_account = dict(claims, live_mode=False, sub="acc_" + new_id().hex())
    tampered = ".".join([header, _b64(json.dumps(other_account).encode()), signature])
    assert "not valid" in refused(signer, tampered)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "..", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_garbage_is_refused(token: str) -> None:
    assert refused(TokenSigner(KEY), token)


def test_too_long_token_says_so() -> None:
    assert "too long" in refused(TokenSigner(KEY), "x" * (MAX_TOKEN_LENGTH + 1))


# --- remembered tokens --------------------------------------------------------------------


def test_a_remembered_token_still_expires() -> None:
    signer = TokenSigner(KEY, ttl=1)
    token = signer.issue(api_key(), now())
    assert signer.verify(token)  # checked in full, then remembered
    assert signer.verify(token)  # answered from memory
    expires = json.loads(_unb64(token.split(".")[1]))["exp"]
    while time.time() < expires:
        time.sleep(0.05)
    assert "expired" in refused(signer, token)
    assert "expired" in refused(signer, token)  # and forgotten: the full check says so too


def test_remembering_a_token_does_not_open_the_door_to_its_variants() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(api_key(live_mode=False), now())
    assert signer.verify(token).live_mode is False
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    tampered = ".".join(
        [header, _b64(json.dumps(dict(claims, live_mode=True)).encode()), signature]
    )
    assert "not valid" in refused(signer, tampered)
    assert "not valid" in refused(signer, tampered)  # a refused token is never remembered
    assert "not valid" in refused(signer, token + "x")


def test_the_memory_is_bounded() -> None:
    signer = TokenSigner(KEY, cache_size=3)
    tokens = [signer.issue(api_key(), now()) for _ in range(10)]
    callers = [signer.verify(token) for token in tokens]
    assert len(signer._verified) == 3
    # forgotten tokens are simply checked in full again, with the same answer
    assert [signer.verify(token) for token in tokens] == callers


def test_parse_bearer() -> None:
    assert parse_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert parse_bearer("bearer  abc.def.ghi ") == "abc.def.ghi"
    for header, problem in [
        (None, "Missing Authorization header"),
        ("", "Missing Authorization header"),
        ("Basic YTpi", "Bearer scheme"),
        ("Bearer", "Bearer scheme"),
        ("Bearer   ", "Bearer scheme"),
    ]:
        with pytest.raises(Unauthenticated) as caught:
            parse_bearer(header)
        assert problem in caught.value.message


# --- the signing key file -----------------------------------------------------------------


def test_signing_key_file_is_created_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = load_or_create_signing_key(data_dir)
    assert len(key) == 32
    path = data_dir / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes.fromhex(path.read_text().strip()) == key
    # nothing else (no temporary file) is left beside it
    assert sorted(p.name for p in data_dir.iterdir()) == [SIGNING_KEY_FILE]


def test_signing_key_is_reused(tmp_path: Path) -> None:
    first = load_or_create_signing_key(tmp_path)
    before = (tmp_path / SIGNING_KEY_FILE).stat()
    second = load_or_create_signing_key(tmp_path)
    assert first == second
    after = (tmp_path / SIGNING_KEY_FILE).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    # tokens from one process verify in the next
    token = TokenSigner(first).issue(api_key(), now())
    assert TokenSigner(load_or_create_signing_key(tmp_path)).verify(token)


def test_each_data_dir_gets_its_own_key(tmp_path: Path) -> None:
    assert load_or_create_signing_key(tmp_path / "a") != load_or_create_signing_key(tmp_path / "b")


def _load_in_child(data_dir: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        results.put(load_or_create_signing_key(Path(data_dir)).hex())  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the parent as a failure
        results.put(f"error: {exc!r}")  # type: ignore[attr-defined]


def test_concurrent_creation_gives_everyone_the_same_full_key(tmp_path: Path) -> None:
    """N worker processes starting at once on a fresh data directory must all sign with the
    same, complete key (never an empty or half-written one)."""
    context = multiprocessing.get_context("fork")
    workers = 8
    for round_ in range(15):
        data_dir = tmp_path / f"round-{round_}"
        barrier = context.Barrier(workers)
        results = context.Queue()
        processes = [
            context.Process(target=_load_in_child, args=(str(data_dir), barrier, results))
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        keys = [results.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert all(len(k) == 64 for k in keys), keys
        assert len(set(keys)) == 1, keys
        on_disk = (data_dir / SIGNING_KEY_FILE).read_text().strip()
        assert keys[0] == on_disk
        assert stat.S_IMODE(os.stat(data_dir / SIGNING_KEY_FILE).st_mode) == 0o600
        assert sorted(p.name for p in data_dir.iterdir()) == [SIGNING_KEY_FILE]


# --- the key id, the lifetime (issue 12)


def test_a_token_names_its_signing_key_and_other_kids_are_refused() -> None:
    """devreg's tokens carry `kid` = a hash of the signing key (never the key); a token
    signed with the right key but no kid, or another key's kid, is refused."""
    signer = TokenSigner(KEY)
    token = signer.issue(api_key(), now())
    assert jwt.get_unverified_header(token)["kid"] == signing_key_id(KEY) == signer.key_id
    assert signing_key_id(KEY) != signing_key_id(OTHER_KEY)
    assert KEY.hex() not in token and signing_key_id(KEY) not in KEY.hex()
    claims = claims_for(api_key())
    for header in ({}, {"kid": signing_key_id(OTHER_KEY)}, {"kid": ""}, {"kid": "0" * 16}):
        other = jwt.encode(claims, KEY, algorithm="HS256", headers=header or None)
        assert "current key" in refused(signer, other), header
        assert "current key" in refused(signer, other), header  # refusals are not cached


@pytest.mark.parametrize("lifetime", [TOKEN_TTL_SECONDS + 1, 30 * 365 * 86400])
def test_a_token_living_longer_than_the_ttl_is_refused(lifetime: int) -> None:
    issued = now()
    claims = claims_for(api_key(), iat=issued, exp=issued + lifetime)
    token = jwt.encode(claims, KEY, algorithm="HS256", headers=KID)
    assert "lives longer" in refused(TokenSigner(KEY), token)
    exact = claims_for(api_key(), iat=issued, exp=issued + TOKEN_TTL_SECONDS)
    assert TokenSigner(KEY).verify(jwt.encode(exact, KEY, algorithm="HS256", headers=KID))
