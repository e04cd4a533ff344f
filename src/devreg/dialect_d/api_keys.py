"""Dialect D's `/iot/api/v2/api-key`: an account's keys managed with one of its write keys,
in the caller's own mode. Read, validate, call core/api_keys.py, render; the secret is in
the creation (and rotation) answer only, never cached."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from devreg.core.api_keys import create_key, find_key_of, key_page, revoke_key, rotate_key
from devreg.core.clock import now_us
from devreg.core.errors import Forbidden
from devreg.core.ids import render_uuid
from devreg.core.records import ApiKey, Caller, Scope
from devreg.core.store import DeviceStore
from devreg.dialect_d import params as query
from devreg.dialect_d.shapes import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyListOut,
    RotateIn,
    render_api_key,
)
from devreg.web.body import decode_body
from devreg.web.request import Request
from devreg.web.response import NO_STORE, Response, json_response

CallerOf = Callable[[Request], Awaitable[Caller]]


class ApiKeyRoutes:
    def __init__(self, store: DeviceStore, caller_of: CallerOf) -> None:
        self.store = store
        self.caller_of = caller_of

    def routes(self) -> list[tuple[str, str, Callable[[Request], Awaitable[Response]]]]:
        return [
            ("POST", "/api-key", self.create),
            ("GET", "/api-key", self.list),
            ("GET", "/api-key/{id}", self.get),
            ("PUT", "/api-key/{id}/revoke", self.revoke),
            ("POST", "/api-key/{id}/rotate", self.rotate),
        ]

    async def manager(self, request: Request) -> tuple[Caller, ApiKey]:
        """The caller and its own key, which must be a write key: reading the account's
        keys is managing them too."""
        caller = await self.caller_of(request)
        if caller.scope is not Scope.WRITE or caller.key_id is None:
            raise Forbidden("Managing API keys needs a write key of the account")
        own = await find_key_of(self.store, caller.key_id, caller.account_id, caller.live_mode)
        return caller, own

    def key_id(self, request: Request) -> bytes:
        return query.uuid_param(request.path_params["id"], "API key id")

    async def create(self, request: Request) -> Response:
        caller, own = await self.manager(request)
        body = await decode_body(request, ApiKeyIn)
        days = None if isinstance(body.expires_in_days, msgspec.UnsetType) else body.expires_in_days
        divisions = (
            None if isinstance(body.division_ids, msgspec.UnsetType)
            else [query.uuid_param(text, "division_ids") for text in body.division_ids]
        )  # fmt: skip
        secret, key = await create_key(
            self.store, caller.account_id, caller.live_mode, body.name, caller.origin,
            scope=Scope(body.scope), expires_in_days=days, division_ids=divisions, creator=own,
        )  # fmt: skip
        out = ApiKeyCreatedOut(secret=secret, key=render_api_key(key, now_us()))
        return json_response(201, out, [NO_STORE])

    async def list(self, request: Request) -> Response:
        caller, own = await self.manager(request)
        limit, offset = query.page_params(request.query())
        keys, total = await key_page(
            self.store, caller.account_id, caller.live_mode, limit=limit, offset=offset,
            manager=own,
        )  # fmt: skip
        now = now_us()
        records = [render_api_key(key, now) for key in keys]
        out = ApiKeyListOut(limit=limit, offset=offset, total=total, records=records)
        return json_response(200, out)

    async def get(self, request: Request) -> Response:
        caller, own = await self.manager(request)
        key = await find_key_of(
            self.store, self.key_id(request), caller.account_id, caller.live_mode, own
        )
        return json_response(200, render_api_key(key, now_us()))

    async def revoke(self, request: Request) -> Response:
        """Answers once every devreg process refuses the key (a key may revoke itself)."""
        caller, own = await self.manager(request)
        key = await revoke_key(
            self.store, self.key_id(request), caller.origin,
            account_id=caller.account_id, live_mode=caller.live_mode, manager=own,
        )  # fmt: skip
        return json_response(200, render_api_key(key, now_us()))

    async def rotate(self, request: Request) -> Response:
        caller, own = await self.manager(request)
        body = await decode_body(request, RotateIn)  # no body: the default overlap
        secret, new, old = await rotate_key(
            self.store, self.key_id(request), caller.origin, overlap_hours=body.overlap_hours,
            account_id=caller.account_id, live_mode=caller.live_mode, creator=own,
        )  # fmt: skip
        out = ApiKeyCreatedOut(
            secret=secret, key=render_api_key(new, now_us()), replaces=render_uuid(old.id)
        )
        return json_response(201, out, [NO_STORE])
