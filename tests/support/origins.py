"""Origins and callers for tests that call the core or the store directly."""

from __future__ import annotations

from devreg.core.ids import render_uuid
from devreg.core.records import Actor, ActorKind, Caller, Origin, operator_origin

# Changes a test makes at the store: logged as an operator's command.
TEST_ORIGIN: Origin = operator_origin("test", "req_test")


def api_caller(account_id: bytes, live_mode: bool = True, key_id: bytes = bytes(16)) -> Caller:
    """A back office calling with an API key (dialect D's x-api-key)."""
    return Caller(
        account_id=account_id,
        live_mode=live_mode,
        credential_id="key:" + key_id.hex(),
        actor=Actor(ActorKind.API_KEY, render_uuid(key_id)),
        request_id="req_test",
    )
