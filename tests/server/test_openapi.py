"""The service's own part of /openapi.json."""

from __future__ import annotations

from devreg.server.openapi import build_openapi


def test_healthz_documents_its_json_bodies() -> None:
    responses = build_openapi()["paths"]["/healthz"]["get"]["responses"]
    ok = responses["200"]["content"]["application/json"]["schema"]
    assert ok["properties"] == {"status": {"const": "ok"}} and ok["required"] == ["status"]
    down = responses["503"]["content"]["application/json"]["schema"]
    assert set(down["required"]) == {"status", "database"}
