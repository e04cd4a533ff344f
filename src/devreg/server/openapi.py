"""`/openapi.json`: the document of every dialect mounted, from the code's own schemas."""

from __future__ import annotations

from typing import Any

import msgspec

import devreg
from devreg.auth.crl_fetches import CRL_FETCH_BURST, CRL_FETCH_RATE
from devreg.core.store import STORAGE_FULL_RETRY_AFTER
from devreg.dialect_d import openapi as dialect_d
from devreg.dialect_f import openapi as dialect_f
from devreg.pki.revocation import MARK_MAX_AGE_SECONDS, REBUILD_WAIT_SECONDS


def build_openapi() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        (*dialect_f.SHAPES, *dialect_d.SHAPES), ref_template="#/components/schemas/{name}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "devreg",
            "version": devreg.__version__,
            "description": "Device registry and device identity. Dialect F follows the"
            " Flatpeak API (version 2025-09-14.anode).",
        },
        "paths": {
            **dialect_f.paths(),
            **dialect_d.paths(),
            **_publication(),
            "/healthz": {
                "get": {
                    "tags": ["Service"],
                    "operationId": "healthz",
                    "summary": "Liveness and database",
                    "responses": {
                        "200": _health("Serving", {"status": {"const": "ok"}}),
                        "503": _health(
                            "The database cannot be reached (`unavailable`, `unreachable`),"
                            " or its disk is full and writes are refused (`degraded`,"
                            " `storage_full`: a write was refused for lack of space less"
                            f" than {STORAGE_FULL_RETRY_AFTER} s ago and writes have not"
                            " been stored again since; reads are still served)",
                            {
                                "status": {"enum": ["unavailable", "degraded"]},
                                "database": {"enum": ["unreachable", "storage_full"]},
                            },
                        ),
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {**dialect_f.SECURITY_SCHEMES, **dialect_d.SECURITY_SCHEMES},
        },
    }


def _health(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _publication() -> dict[str, Any]:
    def one(op_id: str, summary: str, media: str) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["PKI"],
                "operationId": op_id,
                "summary": summary,
                "responses": {"200": {"description": summary, "content": {media: {}}}},
            }
        }

    def crl(op_id: str, summary: str, media: str) -> dict[str, Any]:
        path = one(op_id, summary, media)
        path["get"]["description"] = (
            "Signed by the CA, valid for a day. A revocation shows in it within"
            f" {MARK_MAX_AGE_SECONDS:g} s (each process reads the revocation mark at most"
            " that often) plus the rebuild; a request waits for a rebuild under way at most"
            f" {REBUILD_WAIT_SECONDS:g} s, then gets the previous CRL. Refusal over mutual"
            " TLS does not wait for the CRL."
        )
        path["get"]["responses"]["429"] = {
            "description": f"More than {CRL_FETCH_BURST} fetches at once, or"
            f" {CRL_FETCH_RATE:g} a second after that, from this client address; see"
            " Retry-After",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
        }
        return path

    return {
        "/ca.pem": one("ca-pem", "devreg's CA certificate", "application/x-pem-file"),
        "/crl.pem": crl("crl-pem", "The CA's CRL, PEM", "application/x-pem-file"),
        "/crl.der": crl("crl-der", "The CA's CRL, DER", "application/pkix-crl"),
    }
