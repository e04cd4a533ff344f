"""Secrets are never compared with `==`: API keys and enrollment secrets are looked up by
their SHA-256 (an index lookup on a hash reveals nothing about the secret), what is
compared directly goes through `hmac.compare_digest`, and bearer tokens are checked by
PyJWT (which compares signatures with `hmac.compare_digest`)."""

from __future__ import annotations

import ast
import hashlib
import hmac
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import devreg
from devreg.auth import api_keys
from devreg.auth.access_gate import AccessGate
from devreg.auth.api_keys import authenticate_key, new_api_key
from devreg.core.accounts import build_account
from devreg.core.errors import Unauthenticated
from devreg.core.ids import new_id, render_prefixed
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceStore
from devreg.est import enrollment
from tests.support.origins import TEST_ORIGIN

SOURCE = Path(devreg.__file__).parent
NOW = 1_700_000_000_000_000

# Names that hold a secret, or something derived from one that must not leak by timing.
SECRET_NAME = re.compile(r"secret|token|password|signature|key_hash|api_key|private|hmac", re.I)
PUBLIC_NAME = re.compile(r"public", re.I)  # public keys' hashes are no secret


def _secret_names(names: set[str]) -> set[str]:
    return {n for n in names if SECRET_NAME.search(n) and not PUBLIC_NAME.search(n)}


def _names(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
        elif isinstance(child, ast.Call) and isinstance(child.func, ast.Name | ast.Attribute):
            found.add(getattr(child.func, "id", None) or getattr(child.func, "attr", ""))
    return found


def _equality_on_secrets() -> list[str]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            # Comparing with a literal (None, "", a constant) says nothing about a secret.
            if any(isinstance(operand, ast.Constant) for operand in operands):
                continue
            if not _secret_names(set().union(*(_names(operand) for operand in operands))):
                continue
            source = ast.get_source_segment(text, node) or ""
            found.append(f"{relative}:{node.lineno}: {source}")
    return found


def test_no_secret_is_compared_with_equality() -> None:
    assert _equality_on_secrets() == []


def test_the_scan_finds_an_equality_on_a_secret(tmp_path: Path) -> None:
    """The scan itself works: the comparisons it must catch are caught."""
    caught = []
    for line in (
        "ok = stored.key_hash == hash_key(secret)",
        "ok = token != expected_token",
        "ok = signature == other",
        "ok = public_key_hash(a) == public_key_hash(b)",
    ):
        node = ast.parse(line).body[0]
        assert isinstance(node, ast.Assign)
        compare = node.value
        assert isinstance(compare, ast.Compare)
        names = set().union(*(_names(o) for o in [compare.left, *compare.comparators]))
        caught.append(bool(_secret_names(names)))
    assert caught == [True, True, True, False]


class Recorder:
    """compare_digest that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return hmac.compare_digest(a, b)


async def test_the_account_of_a_key_is_checked_in_constant_time(
    store: DeviceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(api_keys, "hmac", SimpleNamespace(compare_digest=recorder))
    made = build_account("Acme", NOW)
    secret, key = new_api_key(made.account.id, True, NOW)
    await store.create_account(made.account, [key], made.division, made.profile, TEST_ORIGIN)
    account_text = render_prefixed("acc", made.account.id)

    assert (await authenticate_key(store, account_text, secret)).id == key.id
    assert recorder.calls == [(made.account.id, made.account.id)]
    other = render_prefixed("acc", new_id())
    with pytest.raises(Unauthenticated):
        await authenticate_key(store, other, secret)
    assert len(recorder.calls) == 2


class LookupRecorder:
    """A store that records the values secrets are looked up by."""

    def __init__(self) -> None:
        self.looked_up: list[bytes] = []

    async def key_standing_by_hash(self, key_hash: bytes) -> None:
        self.looked_up.append(key_hash)

    async def get_device_by_id(self, device_id: bytes) -> object:
        return SimpleNamespace(id=device_id, status=DeviceStatus.ACTIVE)

    async def enrollment_secret_valid(
        self, device_id: bytes, secret_hash: bytes, now: int
    ) -> bytes | None:
        self.looked_up.append(secret_hash)
        return None


async def test_keys_and_enrollment_secrets_are_looked_up_by_their_sha256() -> None:
    recorder = LookupRecorder()
    secret = "sk_live_" + "k" * 43
    with pytest.raises(Unauthenticated):
        await authenticate_key(recorder, render_prefixed("acc", new_id()), secret)  # type: ignore[arg-type]
    enrollment_secret = "e" * 32
    with pytest.raises(Unauthenticated):
        await enrollment.authenticate_secret(
            recorder,  # type: ignore[arg-type]
            AccessGate(recorder),  # type: ignore[arg-type]
            new_id(),
            enrollment_secret,
            "est-secret:test",
            "req_test",
        )
    assert recorder.looked_up == [
        hashlib.sha256(secret.encode()).digest(),
        hashlib.sha256(enrollment_secret.encode()).digest(),
    ]
