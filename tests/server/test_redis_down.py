"""`--redis-down refuse`: while the rate limits' Redis is unreachable, every limited
request is a 503 in its dialect's envelope; `local` (the default) keeps serving."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.support.server import create_account, login, start_server


def unreachable_redis() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def test_refuse_answers_503_in_each_dialect_and_local_serves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    local = start_server(data, redis_url=unreachable_redis())
    try:
        account = create_account(local, "Acme")
        token = login(local, account["account_id"], account["live_key"])
    finally:
        local.stop()
    server = start_server(data, redis_url=unreachable_redis(), redis_down="refuse")
    try:
        f = httpx.get(server.base_url + "/devices", headers={"authorization": f"Bearer {token}"})
        assert f.status_code == 503, f.text
        assert f.headers["retry-after"].isdigit()
        body = f.json()
        assert body["object"] == "error" and "temporarily unavailable" in body["message"]
        d = httpx.get(
            server.base_url + "/iot/api/v2/device", headers={"x-api-key": account["live_key"]}
        )
        assert d.status_code == 503, d.text
        (error,) = d.json()["errors"]
        assert set(error) == {"code", "message"} and error["message"]
        assert httpx.get(server.base_url + "/healthz").status_code == 200  # not limited
        assert "requests are refused (503)" in server.log()
    finally:
        server.stop()
    local = start_server(data, redis_url=unreachable_redis())  # the default: local limits
    try:
        served = httpx.get(
            local.base_url + "/devices", headers={"authorization": f"Bearer {token}"}
        )
        assert served.status_code == 200, served.text
    finally:
        local.stop()
