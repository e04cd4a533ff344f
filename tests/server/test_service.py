"""The service around the dialects: health, the OpenAPI document and its offline docs page,
the access log (what it shows and what it must never show) and several worker processes."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml  # type: ignore[import-untyped]

from tests.dialect_f.helpers import anonymous_client, bearer_client, list_all, new_tenant
from tests.dialect_f.test_schemathesis import operations_of
from tests.support.server import RunningServer, start_server

SEED_SPEC = Path("/work/shared/seeds/flatpeak-update-device.openapi.yaml")


def wait_for_log(server: RunningServer, text: str) -> str:
    """The server's log once it contains `text` (lines are written after the response)."""
    deadline = time.monotonic() + 10
    while True:
        log = server.log()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


# --- health -----------------------------------------------------------------------------


def test_healthz(module_server: RunningServer) -> None:
    with anonymous_client(module_server) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


# --- OpenAPI ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(module_server: RunningServer) -> dict[str, Any]:
    with anonymous_client(module_server) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def test_openapi_is_a_valid_3_1_document(
    module_server: RunningServer, spec: dict[str, Any]
) -> None:
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] and spec["info"]["version"]
    schema = schemathesis.openapi.from_url(module_server.base_url + "/openapi.json")
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises on any violation
    operations = operations_of(schema)
    labels = {operation.label for operation in operations}
    assert {
        "GET /login",
        "POST /devices",
        "GET /devices",
        "GET /devices/{id}",
        "PATCH /devices/{id}",
        "DELETE /devices/{id}",
    } <= labels


def test_openapi_describes_dialect_f_as_the_seed_does(spec: dict[str, Any]) -> None:
    seed = yaml.safe_load(SEED_SPEC.read_text())
    paths = spec["paths"]
    assert set(paths["/devices"]) >= {"get", "post"}
    assert set(paths["/devices/{id}"]) >= {"get", "patch", "delete"}
    assert paths["/devices/{id}"]["patch"]["operationId"] == "update-device"  # as in the seed
    for path, methods in (
        ("/devices", ("get", "post")),
        ("/devices/{id}", ("get", "patch", "delete")),
    ):
        for method in methods:
            operation = paths[path][method]
            assert operation["security"] == [{"bearerAuth": []}], (path, method)
            assert {"403", "429"} <= set(operation["responses"]), (path, method)
    assert {"200", "403", "404", "409", "429"} <= set(paths["/devices/{id}"]["patch"]["responses"])
    assert paths["/login"]["get"]["security"] == [{"basicAuth": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["basicAuth"]["scheme"] == "basic"

    # The device the PATCH answers has the seed's fields, required as the seed requires them.
    ok = paths["/devices/{id}"]["patch"]["responses"]["200"]["content"]["application/json"]
    device = resolve(spec, ok["schema"])
    seed_device = seed["components"]["schemas"]["Device"]
    assert set(device["properties"]) == set(seed_device["properties"])
    assert set(device["required"]) == set(seed_device["required"])
    # The update body takes reference_id and nothing else.
    body = paths["/devices/{id}"]["patch"]["requestBody"]["content"]["application/json"]
    update = resolve(spec, body["schema"])
    assert set(update["properties"]) == {"reference_id"}
    assert update.get("additionalProperties") is False
    # Errors are Flatpeak's whole error object: seed 000's fields, live_mode and context.
    error = paths["/devices/{id}"]["patch"]["responses"]["404"]["content"]["application/json"]
    assert set(resolve(spec, error["schema"])["properties"]) == {
        "object",
        "live_mode",
        "context",
        "type",
        "code",
        "message",
        "time_created",
    }


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


# --- docs -------------------------------------------------------------------------------

ASSET_TYPES = {".css": "text/css", ".js": "javascript"}


def test_docs_page_works_offline(module_server: RunningServer) -> None:
    with anonymous_client(module_server) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            assert asset.startswith("/docs/static/"), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            wanted = ASSET_TYPES[Path(asset).suffix]
            assert wanted in response.headers["content-type"], (asset, response.headers)
            assert len(response.content) > 0
        scripts = "".join(client.get(a).text for a in assets if a.endswith(".js"))
        assert "SwaggerUIBundle" in scripts  # the real Swagger UI, vendored
        # The page's own start-up script loads our document, from this server.
        init = client.get("/docs/static/init.js").text
        assert "/openapi.json" in init and "http" not in init
        for missing in ("/docs/static/nope.js", "/docs/static/..%2F..%2Fpyproject.toml"):
            assert client.get(missing).status_code == 404


# --- access log -------------------------------------------------------------------------


def test_access_log_shows_requests_but_no_secrets(module_server: RunningServer) -> None:
    tenant = new_tenant(module_server)
    try:
        query_secret = "qs" + secrets.token_hex(8)
        device = tenant.live.post("/devices", json={"reference_id": "logged"}).json()
        assert tenant.live.get("/devices", params={"reference_id": query_secret}).status_code == 200
        patched = tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": "x"})
        assert patched.status_code == 200
        assert tenant.live.delete(f"/devices/{device['id']}").status_code == 202
        wrong_key = "sk_live_" + secrets.token_urlsafe(32)
        assert tenant.anon.get("/login", auth=(tenant.account_id, wrong_key)).status_code == 403
        bad_token = "Bearer " + secrets.token_urlsafe(40)
        assert tenant.anon.get("/devices", headers={"authorization": bad_token}).status_code == 403
        marker = f"/end-of-test-{secrets.token_hex(6)}"
        assert tenant.anon.get(marker).status_code == 404
        log = wait_for_log(module_server, marker)
    finally:
        tenant.close()

    lines = log.splitlines()
    expected = [
        '"GET /login" 200',
        '"POST /devices" 201',
        '"GET /devices" 200',
        f'"PATCH /devices/{device["id"]}" 200',
        f'"DELETE /devices/{device["id"]}" 202',
        '"GET /login" 403',
        '"GET /devices" 403',
        f'"GET {marker}" 404',
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, log[-3000:])

    basic_live = base64.b64encode(f"{tenant.account_id}:{tenant.live_key}".encode()).decode()
    basic_wrong = base64.b64encode(f"{tenant.account_id}:{wrong_key}".encode()).decode()
    forbidden = {
        "live key": tenant.live_key,
        "test key": tenant.test_key,
        "wrong key": wrong_key,
        "live token": tenant.live_token,
        "live token signature": tenant.live_token.rsplit(".", 1)[1],
        "test token": tenant.test_token,
        "bad token": bad_token.removeprefix("Bearer "),
        "basic header": basic_live,
        "basic header, wrong key": basic_wrong,
        "query value": query_secret,
        "query string": "reference_id=",
    }
    for name, secret in forbidden.items():
        assert secret not in log, f"the {name} is in the server log"


def test_a_path_cannot_forge_access_log_lines(module_server: RunningServer) -> None:
    forged = f"forged-{secrets.token_hex(4)}"
    path = f"/devices/x%0A2026-01-01 00:00:00,000 INFO devreg.access {forged}%0D%0A"
    with anonymous_client(module_server) as client:
        assert client.get(path).status_code == 403  # the route exists; no credentials
        marker = f"/end-of-test-{secrets.token_hex(6)}"
        assert client.get(marker).status_code == 404
    log = wait_for_log(module_server, marker)
    assert forged in log  # the request is logged...
    for line in log.splitlines():
        if forged in line:  # ...on one line of its own, the newline escaped
            assert '"GET /devices/x' in line and "\\x0a" in line, line
            assert not line.startswith("2026-01-01"), line


def test_without_trusted_proxies_the_tcp_peer_is_the_client(module_server: RunningServer) -> None:
    """X-Forwarded-For counts only from a configured proxy: a local process could otherwise
    name any address, in the log and for the per-address login limit."""
    spoofed = "203.0.113.77"
    with anonymous_client(module_server) as client:
        marker = f"/end-of-test-{secrets.token_hex(6)}"
        response = client.get(marker, headers={"x-forwarded-for": spoofed})
        assert response.status_code == 404
    log = wait_for_log(module_server, marker)
    line = next(line for line in log.splitlines() if marker in line)
    assert spoofed not in line and "127.0.0.1" in line, line


# --- workers ----------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_serve_the_same_data(
    tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    database_url = request.getfixturevalue("postgres_url") if store == "postgres" else None
    server = start_server(tmp_path / "data", database_url=database_url, workers=2, rate_limit=0)
    try:
        tenant = new_tenant(server)
        created: list[str] = []
        lock = threading.Lock()

        def create_on_fresh_connections(worker: int) -> None:
            for i in range(5):  # a new connection each time: both processes take some
                with bearer_client(server, tenant.live_token) as client:
                    response = client.post("/devices", json={"reference_id": f"w{worker}-{i}"})
                assert response.status_code == 201, response.text
                with lock:
                    created.append(response.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create_on_fresh_connections, range(8)))
        # Every device is visible through any connection, whichever process made it.
        for _ in range(4):
            with bearer_client(server, tenant.live_token) as client:
                response = client.get("/devices", params={"limit": 100})
                assert response.status_code == 200
                assert sorted(d["id"] for d in response.json()["data"]) == sorted(created)
        assert len(set(created)) == 40
        assert len(list_all(tenant.live)) == 40
        tenant.close()

        log = server.log()
        parent = re.findall(r"Started parent process \[(\d+)\]", log)
        workers = set(re.findall(r"Started server process \[(\d+)\]", log))
        assert len(workers) == 2, log
        assert not workers & set(parent), log
        assert log.count("Application startup complete") == 2, log
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_unknown_paths_and_methods_outside_the_dialect(module_server: RunningServer) -> None:
    with httpx.Client(base_url=module_server.base_url) as client:
        assert client.get("/").status_code == 404
        response = client.post("/healthz")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"  # HEAD is served wherever GET is
        assert response.json()["code"] == "method_not_allowed"
