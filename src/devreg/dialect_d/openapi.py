"""Dialect D's part of `/openapi.json`, built from the Structs that decode and render."""

from __future__ import annotations

from typing import Any

from devreg.changelog.service import (
    DEFAULT_LOG_PAGE,
    MAX_FILTER_TEXT,
    MAX_LOG_PAGE,
    MAX_LOG_SCAN,
)
from devreg.core.api_keys import MAX_USABLE_KEYS
from devreg.core.devices import TOTAL_COUNT_BOUND
from devreg.core.paging import DEFAULT_LIST_PAGE, MAX_LIST_PAGE
from devreg.core.quotas import DEVICES_SETTING, DIVISIONS_SETTING, PROFILES_SETTING
from devreg.core.records import ActorKind
from devreg.core.store import STORAGE_FULL_RETRY_AFTER
from devreg.core.text import TEXT_PATTERN, TEXT_RULE
from devreg.dialect_d.history import DeviceStateOut, HistoryOut, LogPageOut
from devreg.dialect_d.pages import MAX_LIST_BYTES, TOTAL_EXACT_HEADER
from devreg.dialect_d.shapes import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyListOut,
    ApiKeyOut,
    CertificateIn,
    CertificateListOut,
    CertificateOut,
    DeviceDetails,
    DeviceIn,
    DeviceListOut,
    DeviceUpdateIn,
    DivisionIn,
    DivisionListOut,
    DivisionOut,
    EnrollmentSecretOut,
    EnrollmentSecretsRevokedOut,
    ErrorsOut,
    ProfileIn,
    ProfileListOut,
    ProfileOut,
    ProfileUpdateIn,
    RenewIn,
    RenewOut,
    RevokedCertificatesOut,
    RevokeIn,
    RotateIn,
)
from devreg.est.enrollment import DEFAULT_MAX_OUTSTANDING_SECRETS
from devreg.pki.admission import (
    DEFAULT_ISSUANCE_BURST,
    DEFAULT_ISSUANCE_PER_HOUR,
    DEFAULT_MAX_ACTIVE_CERTIFICATES,
)

SHAPES: tuple[type, ...] = (
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyCreatedOut,
    ApiKeyListOut,
    RotateIn,
    HistoryOut,
    LogPageOut,
    DeviceStateOut,
    EnrollmentSecretOut,
    EnrollmentSecretsRevokedOut,
    RenewIn,
    RenewOut,
    RevokeIn,
    DivisionIn,
    DivisionOut,
    DivisionListOut,
    ProfileIn,
    ProfileOut,
    ProfileListOut,
    ProfileUpdateIn,
    DeviceIn,
    DeviceUpdateIn,
    DeviceDetails,
    DeviceListOut,
    CertificateIn,
    CertificateOut,
    CertificateListOut,
    RevokedCertificatesOut,
    ErrorsOut,
)

_ERRORS = {
    "400": "invalid_input (the message names the problem) or entity_not_found",
    "401": "invalid_api_key: missing or unknown x-api-key",
    "403": "access_denied: the client certificate may not do this",
    "413": "Request body over 1 MiB",
    "415": "Content-Type is not application/json",
    "429": "Over the credential's rate limit; see Retry-After",
}
_STORAGE_FULL = {
    "description": "insufficient_storage: the database is out of disk space and nothing was"
    f" written; retry after Retry-After ({STORAGE_FULL_RETRY_AFTER} s)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorsOut"}}},
}
# Reads that write: a device's own GET over mutual TLS records its last_seen.
_READS_THAT_WRITE = {"d-get-device"}
_ACTIVE_LIMIT = (
    "active_certificate_limit: the device already holds DEVREG_MAX_ACTIVE_CERTIFICATES"
    f" (default {DEFAULT_MAX_ACTIVE_CERTIFICATES}) unrevoked, unexpired certificates"
)
_SECRET_LIMIT = (
    "enrollment_secret_limit: the account already holds DEVREG_MAX_ENROLLMENT_SECRETS"
    f" (default {DEFAULT_MAX_OUTSTANDING_SECRETS}) outstanding enrollment secrets"
)
_ISSUANCE_TEXT = (
    " Each device may hold at most DEVREG_MAX_ACTIVE_CERTIFICATES"
    f" (default {DEFAULT_MAX_ACTIVE_CERTIFICATES}) active certificates (409 beyond), and is"
    f" issued at most DEVREG_ISSUANCE_BURST (default {DEFAULT_ISSUANCE_BURST}) at once, then"
    f" DEVREG_ISSUANCE_RATE (default {DEFAULT_ISSUANCE_PER_HOUR:g}) an hour (429 with"
    " Retry-After beyond), whichever credential asks."
)
_KEY: list[dict[str, list[str]]] = [{"apiKey": []}]
_KEY_OR_CERT: list[dict[str, list[str]]] = [{"apiKey": []}, {"clientCertificate": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    op_id: str,
    summary: str,
    ok: str,
    out: str | None,
    *,
    body: str | None = None,
    security: list[dict[str, list[str]]] = _KEY,
    params: list[dict[str, Any]] | None = None,
    description: str | None = None,
    links: dict[str, Any] | None = None,
    forbidden: str | None = None,
    body_required: bool = True,
    limit: str | None = None,
    quota: str | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation; `forbidden` documents a 403 an API key can get (with when it does);
    `body_required=False` where no body at all is served as an empty object; `limit` a 409
    for a cap the operation can reach (its code and when); `quota` names the DEVREG_*
    setting whose quota it answers 409 to."""
    responses: dict[str, Any] = {
        ok: {"description": summary}
        if out is None
        else {"description": summary, "content": {"application/json": {"schema": _ref(out)}}}
    }
    if links:
        responses[ok]["links"] = links
    if headers:
        responses[ok]["headers"] = headers
    for status, text in _ERRORS.items():
        if status == "403" and security is _KEY:
            if forbidden is None:
                continue
            text = f"access_denied: {forbidden}"
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("ErrorsOut")}},
        }
    if limit is not None or quota is not None:
        reasons = [limit] if limit is not None else []
        if quota is not None:
            reasons.append(
                f"quota_exceeded: the account is at its quota ({quota}); nothing was written"
            )
        responses["409"] = {
            "description": "; ".join(reasons),
            "content": {"application/json": {"schema": _ref("ErrorsOut")}},
        }
    operation: dict[str, Any] = {
        "tags": ["Dialect D"], "operationId": op_id, "summary": summary,
        "security": security, "responses": responses,
    }  # fmt: skip
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _link(
    operation_id: str, description: str, body: dict[str, str] | None = None, **parameters: str
) -> dict[str, Any]:
    """An OpenAPI link: where a response's values go next (clients and stateful fuzzers
    follow them). A `body` names only the request fields it fills in."""
    link: dict[str, Any] = {"operationId": operation_id, "description": description}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


_DELETE_TEXT = (
    'An archive, as DigiCert\'s "Delete device": answers the device with status DELETED.'
    " The record is kept but hidden from lists, counts and dialect F; its device_identifier"
    " and reference_id are free for a new device; its certificates are revoked"
    " (cessationOfOperation), and its enrollment secret. GET, PUT, disable and enable"
    " answer it as an unknown device; PUT /device/{id}/restore brings it back."
)
_RESTORE_TEXT = (
    "A deleted device back to ACTIVE (200, the device), if its device_identifier and"
    " reference_id are still free (else 400 invalid_input naming the clash) and the device"
    " quota has room. Its certificates and enrollment secret stay revoked: issue new ones."
    " A device that is not deleted: 400 invalid_input."
)


def _device_links(id_expression: str) -> dict[str, Any]:
    """From a device (made, updated, or named in a request) to what can be done with it."""
    return {
        "GetDevice": _link("d-get-device", "Read the device", id=id_expression),
        "UpdateDevice": _link("d-update-device", "Replace its values", id=id_expression),
        "DisableDevice": _link("d-disable-device", "Disable it", id=id_expression),
        "EnableDevice": _link("d-enable-device", "Enable it", id=id_expression),
        "DeleteDevice": _link("d-delete-device", "Delete it", id=id_expression),
        "IssueCertificate": _link("d-issue-certificate", "Give it a certificate", id=id_expression),
        "ListCertificates": _link("d-list-certificates", "Its certificates", id=id_expression),
        "DeviceHistory": _link("d-device-history", "Its change history", id=id_expression),
        "CreateEnrollmentSecret": _link(
            "d-create-enrollment-secret", "A one-time EST secret for it", id=id_expression
        ),
        "RevokeEnrollmentSecret": _link(
            "d-revoke-enrollment-secrets", "Revoke its outstanding EST secret", id=id_expression
        ),
        "RevokeAllCertificates": _link(
            "d-revoke-device-certificates", "Revoke all its certificates", id=id_expression
        ),
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema, "description": description}


_KEY_MANAGER = "the caller's key is read-only (managing keys needs a write key)"
_ID = {"in": "path", "name": "id", "required": True, "schema": {"type": "string", "format": "uuid"}}
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "description": "ISO 8601 date or date-time"}
_PAGE = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIST_PAGE, "default": DEFAULT_LIST_PAGE},
        "Page size (a page of large records may hold fewer: see the description)",
    ),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Records to skip"),
]
_LIST = [
    *_PAGE,
    _query(
        "device_identifier",
        {"type": "string", "pattern": TEXT_PATTERN},
        f"Exact device identifier, compared in NFC. The identifier rule applies: {TEXT_RULE}",
    ),
    _query("division_id", _UUID, "Division"),
    _query("device_profile_id", _UUID, "Device profile"),
    _query("created_from", _TIME, "Created at or after"),
    _query("created_to", _TIME, "Created at or before"),
    _query("updated_from", _TIME, "Updated at or after"),
    _query("updated_to", _TIME, "Updated at or before"),
    {
        **_query(
            "upated_to",
            _TIME,
            "`updated_to` as DigiCert's list page spells it; sent with `updated_to`, the two"
            " must be equal",
        ),
        "deprecated": True,
    },
]
_PAGE_TEXT = (
    f"Oldest first, `limit` records from `offset`. An answer is at most {MAX_LIST_BYTES}"
    " bytes: when the next record would take it past that, the page ends early (it always"
    " holds at least one record) and its `limit` is the number of records it holds. Page"
    " by advancing `offset` by `len(records)` (or by the answer's `limit`) until `offset`"
    " reaches `total`: every record is then read exactly once."
)
_DEVICE_LIST_TEXT = (
    f"{_PAGE_TEXT} Without filters `total` is the exact number of the account's devices in"
    " this mode. With filters it is exact up to"
    f" `offset` + {TOTAL_COUNT_BOUND}; past that the answer carries"
    f" `{TOTAL_EXACT_HEADER.decode()}: false` and `total` is `offset` + {TOTAL_COUNT_BOUND}"
    " (there are at least that many), so paging on asks again."
)
_TOTAL_EXACT = {
    TOTAL_EXACT_HEADER.decode(): {
        "description": "`false` when `total` is a lower bound (filtered lists only)",
        "schema": {"type": "string", "enum": ["false"]},
    }
}
_UPDATE_TEXT = (
    "Seed 003's update: the ID never changes; `fields` is destructive (every value not sent"
    " is deleted). With an API key the device_api_allow_* flags may be set too; a device"
    " calling with its own certificate (client-auth listener) may not change them."
    " The device object as GET shows it may be sent back: `name` and `mandatory` beside a"
    " value must be the profile's, `id` the path's, and the other keys the server sets are"
    " ignored. Answers 201, as the seed documents."
)


_PROFILE_TEXT = (
    "Only what is given changes. `fields`, when given, is the complete new list: an entry"
    " with `id` keeps (and may rename) that field, one without adds a field, and a field left"
    " out is removed together with every device's value for it. The flags are defaults for"
    " devices created afterwards; existing devices keep their own. A field made mandatory is"
    " enforced on each device's next update."
)


def _key_links() -> dict[str, Any]:
    """From a key made (or made by a rotation) to what can be done with it."""
    key_id = "$response.body#/key/id"
    return {
        "GetApiKey": _link("d-get-api-key", "Read it", id=key_id),
        "RevokeApiKey": _link("d-revoke-api-key", "Revoke it", id=key_id),
        "RotateApiKey": _link("d-rotate-api-key", "Rotate it", id=key_id),
    }


def _profile_links() -> dict[str, Any]:
    return {
        "GetProfile": _link("d-get-profile", "Read it", id="$response.body#/id"),
        "UpdateProfile": _link("d-update-profile", "Change it", id="$response.body#/id"),
        "CreateDevice": _link(
            "d-create-device",
            "A device of this profile",
            body={
                "device_profile_id": "$response.body#/id",
                "division_id": "$response.body#/division/id",
            },
        ),
        "ListDevices": _link(
            "d-list-devices", "Its devices", device_profile_id="$response.body#/id"
        ),
    }


_AS_OF = _query(
    "as_of",
    {"type": "string", "format": "date-time"},
    "API key only: the device as it was at this moment (RFC 3339 with its offset, to the"
    " microsecond, like a history record's `time`), also for a device deleted since;"
    " answered in the history's device shape (DeviceStateOut). No other parameter is taken.",
)
_HISTORY_TEXT = (
    "Every change of the device from the change log, newest first, `limit` from `offset`:"
    " who (`actor.kind`: api_key, bearer_token, device_certificate, enrollment_secret, cli,"
    " system; `actor.id`: the key's, certificate's or secret's id, the operator's user), when"
    " (to the microsecond), in which request (`request_id`, the X-Request-Id), the action,"
    " and the whole device before and after: dialect D's device shape plus `reference_id`,"
    " `live_mode` and `version`. A field removed from its profile since shows `name` null."
    " Also for a deleted device. `request_id` is the client's own X-Request-Id when it sent"
    " one: a correlation id, not evidence (the actor is)."
    f" An answer is at most {MAX_LIST_BYTES} bytes: when the next record would take it past"
    " that, the page ends early (it always holds at least one record) and its `limit` is"
    " the number of records it holds; advance `offset` by `len(records)` until `offset`"
    " reaches `total`."
)
_LOG_TEXT = (
    "The account's change log, oldest first from `after_seq` (exclusive): the key's mode"
    " and what both modes share (the account, its keys of that mode, divisions, profiles)."
    " `next_after_seq` continues it: null when the account's log was read to its end (ask"
    " again later for newer entries). A page may hold fewer records than `limit` and still"
    " have a `next_after_seq`: unless narrowed by `object_id`, a page examines at most"
    f" {MAX_LOG_SCAN} of the account's entries (a filter that matches few of them ends the"
    " page there, short or even empty, with `next_after_seq` the last entry examined), and"
    f" an answer is at most {MAX_LIST_BYTES} bytes (a page of large records ends early, its"
    " `limit` the number of records it holds, `next_after_seq` its last record's `seq`)."
    " Page on until `next_after_seq` is null. Records as stored; `hash` chains each entry"
    " to the previous one (see `devreg audit verify`). `actor_id` and `action` are at most"
    f" {MAX_FILTER_TEXT} characters and follow the text rule: {TEXT_RULE}"
)
_LOG_PARAMS = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LOG_PAGE, "default": DEFAULT_LOG_PAGE},
        "Page size",
    ),
    _query("after_seq", {"type": "integer", "minimum": 0, "default": 0}, "Entries after this"),
    _query("object_id", _UUID, "Only this object's entries"),
    _query("actor_kind", {"type": "string", "enum": [k.value for k in ActorKind]}, "Actor kind"),
    _query(
        "actor_id",
        {"type": "string", "maxLength": MAX_FILTER_TEXT, "pattern": TEXT_PATTERN},
        "Actor id (with or without actor_kind)",
    ),
    _query(
        "action",
        {"type": "string", "maxLength": MAX_FILTER_TEXT, "pattern": TEXT_PATTERN},
        "Action, e.g. device.update",
    ),
    _query("from", {"type": "string", "format": "date-time"}, "At or after (RFC 3339)"),
    _query("to", {"type": "string", "format": "date-time"}, "At or before (RFC 3339)"),
]


def _as_of(operation: dict[str, Any]) -> dict[str, Any]:
    """GET device answers either shape: DeviceDetails, or DeviceStateOut with `as_of`."""
    content = operation["responses"]["200"]["content"]["application/json"]
    content["schema"] = {"anyOf": [_ref("DeviceDetails"), _ref("DeviceStateOut")]}
    return operation


def paths() -> dict[str, Any]:
    """Every operation that writes may answer 507 when the database's disk is full."""
    found = _paths()
    for item in found.values():
        for method, operation in item.items():
            if method != "parameters" and (
                method != "get" or operation["operationId"] in _READS_THAT_WRITE
            ):
                operation["responses"]["507"] = _STORAGE_FULL
    return found


def _paths() -> dict[str, Any]:
    base = "/iot/api/v2"
    return {
        f"{base}/division": {
            "post": _op(
                "d-create-division",
                "Create a division",
                "201",
                "DivisionOut",
                body="DivisionIn",
                quota=DIVISIONS_SETTING,
                links={
                    "GetDivision": _link("d-get-division", "Read it", id="$response.body#/id"),
                    "CreateProfile": _link(
                        "d-create-profile",
                        "A device profile in it",
                        body={"division_id": "$response.body#/id"},
                    ),
                    "ListDevices": _link(
                        "d-list-devices", "Its devices", division_id="$response.body#/id"
                    ),
                },
            ),
            "get": _op(
                "d-list-divisions",
                "List divisions",
                "200",
                "DivisionListOut",
                params=_PAGE,
                description=_PAGE_TEXT,
            ),
        },
        f"{base}/division/{{id}}": {
            "parameters": [_ID],
            "get": _op("d-get-division", "Get a division", "200", "DivisionOut"),
        },
        f"{base}/device-profile": {
            "post": _op(
                "d-create-profile",
                "Create a device profile",
                "201",
                "ProfileOut",
                body="ProfileIn",
                links=_profile_links(),
                quota=PROFILES_SETTING,
            ),
            "get": _op(
                "d-list-profiles",
                "List device profiles",
                "200",
                "ProfileListOut",
                params=_PAGE,
                description=_PAGE_TEXT,
            ),
        },
        f"{base}/device-profile/{{id}}": {
            "parameters": [_ID],
            "get": _op("d-get-profile", "Get a device profile", "200", "ProfileOut"),
            "put": _op(
                "d-update-profile",
                "Update a device profile",
                "200",
                "ProfileOut",
                body="ProfileUpdateIn",
                description=_PROFILE_TEXT,
                links=_profile_links(),
                forbidden="a test-mode key (profiles are shared by live and test devices)",
                body_required=False,  # nothing given, nothing changes
            ),
        },
        f"{base}/device": {
            "post": _op(
                "d-create-device",
                "Create a device",
                "201",
                "DeviceDetails",
                body="DeviceIn",
                quota=DEVICES_SETTING,
                links={
                    **_device_links("$response.body#/id"),
                    "FindByIdentifier": _link(
                        "d-list-devices",
                        "Find it by its identifier",
                        device_identifier="$response.body#/device_identifier",
                    ),
                },
            ),
            "get": _op(
                "d-list-devices",
                "List devices, oldest first",
                "200",
                "DeviceListOut",
                params=_LIST,
                description=_DEVICE_LIST_TEXT,
                headers=_TOTAL_EXACT,
            ),
        },
        f"{base}/device/{{id}}": {
            "parameters": [_ID],
            "get": _as_of(
                _op(
                    "d-get-device",
                    "Get a device",
                    "200",
                    "DeviceDetails",
                    security=_KEY_OR_CERT,
                    params=[_AS_OF],
                )
            ),
            "put": _op(
                "d-update-device",
                "Update a device",
                "201",
                "DeviceDetails",
                body="DeviceUpdateIn",
                security=_KEY_OR_CERT,
                description=_UPDATE_TEXT,
                links=_device_links("$response.body#/id"),
                body_required=False,  # no fields: every value is deleted
            ),
            "delete": _op(
                "d-delete-device",
                "Delete (archive) a device",
                "200",
                "DeviceDetails",
                description=_DELETE_TEXT,
                links={
                    "RestoreDevice": _link(
                        "d-restore-device", "Restore it", id="$response.body#/id"
                    )
                },
            ),
        },
        f"{base}/device/{{id}}/disable": {
            "parameters": [_ID],
            "put": _op(
                "d-disable-device",
                "Disable a device",
                "200",
                "DeviceDetails",
                links=_device_links("$response.body#/id"),
            ),
        },
        f"{base}/device/{{id}}/enable": {
            "parameters": [_ID],
            "put": _op(
                "d-enable-device",
                "Enable a device",
                "200",
                "DeviceDetails",
                links=_device_links("$response.body#/id"),
            ),
        },
        f"{base}/device/{{id}}/restore": {
            "parameters": [_ID],
            "put": _op(
                "d-restore-device",
                "Restore a deleted device",
                "200",
                "DeviceDetails",
                description=_RESTORE_TEXT,
                links=_device_links("$response.body#/id"),
                quota=DEVICES_SETTING,
            ),
        },
        f"{base}/device/{{id}}/certificate": {
            "parameters": [_ID],
            "post": _op(
                "d-issue-certificate",
                "Issue a device certificate",
                "201",
                "CertificateOut",
                body="CertificateIn",
                description='`{"csr": PEM}`, `{"generate_key": true}` or `{"pem":'
                " certificate}` (from a --client-ca); the private key is returned only when the"
                " server made it. Keys: EC P-256/P-384/P-521, Ed25519, or RSA 2048-4096 bits"
                " with public exponent 65537." + _ISSUANCE_TEXT,
                limit=_ACTIVE_LIMIT,
                links={
                    "RevokeCertificate": _link(
                        "d-revoke-certificate",
                        "Revoke it",
                        id="$response.body#/certificate_id",
                    ),
                    "ListCertificates": _link(
                        "d-list-certificates", "The device's certificates", id="$request.path.id"
                    ),
                },
            ),
            "get": _op(
                "d-list-certificates",
                "List a device's certificates",
                "200",
                "CertificateListOut",
                params=_PAGE,
                description=_PAGE_TEXT,
            ),
        },
        f"{base}/device/{{id}}/certificate/revoke": {
            "parameters": [_ID],
            "put": _op(
                "d-revoke-device-certificates",
                "Revoke every certificate of the device",
                "200",
                "RevokedCertificatesOut",
                body="RevokeIn",
                body_required=False,  # reason "unspecified"
                description="Every unrevoked certificate of the device, at once (a stolen"
                " device or key: reason keyCompromise); answers those revoked by this call"
                " (none when all already were). Refused on the client-auth listener from the"
                " moment this returns; listed in /crl.pem and /crl.der.",
                links=_device_links("$request.path.id"),
            ),
        },
        f"{base}/device/{{id}}/renew": {
            "parameters": [_ID],
            "post": _op(
                "d-renew-certificate",
                "Renew the device's certificate (the device itself, over mTLS)",
                "200",
                "RenewOut",
                body="RenewIn",
                security=[{"clientCertificate": []}],
                description="Needs device_api_allow_renew_certificate, an ACTIVE device and"
                " its own unrevoked certificate. The CSR's subject and subjectAltName must be"
                " those of the certificate being renewed (RFC 7030 section 4.2.2). The old"
                " certificate stays valid until it expires or is revoked; the new one is"
                " recorded as minted by it (revoked with it for keyCompromise)." + _ISSUANCE_TEXT,
                limit=_ACTIVE_LIMIT,
            ),
        },
        f"{base}/device/{{id}}/enrollment-secret": {
            "parameters": [_ID],
            "post": _op(
                "d-create-enrollment-secret",
                "Make a one-time EST enrollment secret for the device",
                "201",
                "EnrollmentSecretOut",
                description="Shown once, valid 24 hours; replaces (revokes) the device's"
                " outstanding secret. The device enrolls with EST simpleenroll on the EST"
                " port, HTTP Basic `<device id>:<secret>`.",
                limit=_SECRET_LIMIT,
            ),
        },
        f"{base}/device/{{id}}/enrollment-secret/revoke": {
            "parameters": [_ID],
            "put": _op(
                "d-revoke-enrollment-secrets",
                "Revoke the device's outstanding enrollment secret",
                "200",
                "EnrollmentSecretsRevokedOut",
                description="From the moment this returns the secret enrolls nothing;"
                " `revoked` says whether there was one.",
            ),
        },
        f"{base}/device/{{id}}/history": {
            "parameters": [_ID],
            "get": _op(
                "d-device-history",
                "A device's change history",
                "200",
                "HistoryOut",
                params=_PAGE,
                description=_HISTORY_TEXT,
            ),
        },
        f"{base}/audit-log": {
            "get": _op(
                "d-audit-log",
                "The account's change log",
                "200",
                "LogPageOut",
                params=_LOG_PARAMS,
                description=_LOG_TEXT,
            ),
        },
        f"{base}/certificate/{{id}}/revoke": {
            "parameters": [_ID],
            "put": _op(
                "d-revoke-certificate",
                "Revoke a certificate",
                "200",
                "CertificateOut",
                body="RevokeIn",
                body_required=False,  # reason "unspecified"
                description="Refused on the client-auth listener (and in proxy mode) from the"
                " moment this returns, by every process; listed in /crl.pem and /crl.der."
                " With reason keyCompromise, every certificate it minted (EST re-enrollments"
                " and renewals it authenticated, and theirs) is revoked with it.",
            ),
        },
        f"{base}/api-key": {
            "post": _op(
                "d-create-api-key",
                "Make an API key of the caller's account and mode",
                "201",
                "ApiKeyCreatedOut",
                body="ApiKeyIn",
                forbidden=_KEY_MANAGER
                + "; or the new key would outlive the caller's (a key never makes a key with"
                " more rights than its own)",
                limit=f"quota_exceeded: {MAX_USABLE_KEYS} usable keys per account",
                description="The secret is in this answer only (Cache-Control: no-store).",
                links=_key_links(),
            ),
            "get": _op(
                "d-list-api-keys",
                "The account's keys in the caller's mode, never their secrets",
                "200",
                "ApiKeyListOut",
                params=_PAGE,
                forbidden=_KEY_MANAGER,
                description="`last_used` is up to a minute late: each process writes the times"
                " it saw once a minute.",
            ),
        },
        f"{base}/api-key/{{id}}": {
            "parameters": [_ID],
            "get": _op("d-get-api-key", "One key", "200", "ApiKeyOut", forbidden=_KEY_MANAGER),
        },
        f"{base}/api-key/{{id}}/revoke": {
            "parameters": [_ID],
            "put": _op(
                "d-revoke-api-key",
                "Revoke a key",
                "200",
                "ApiKeyOut",
                forbidden=_KEY_MANAGER,
                body_required=False,
                description="Answers once every devreg process (every worker, every host on"
                " the same database) refuses the key and every bearer token made from it,"
                " on connections already open: about a quarter of a second. A key may revoke"
                " itself; revoking a revoked key changes nothing.",
            ),
        },
        f"{base}/api-key/{{id}}/rotate": {
            "parameters": [_ID],
            "post": _op(
                "d-rotate-api-key",
                "Make a key's successor; the old one expires after the overlap",
                "201",
                "ApiKeyCreatedOut",
                body="RotateIn",
                body_required=False,
                forbidden=_KEY_MANAGER,
                links=_key_links(),
                description="The new key has the old one's name, mode, scope and lifetime"
                " (never longer than the caller's key has). The old key stops working"
                " `overlap_hours` from now (0: at once) in every process, with no task left to"
                " remember it. A key is rotated once: rotating it again, or a revoked or"
                " expired key, is 400 invalid_input.",
            ),
        },
    }


SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "clientCertificate": {
        "type": "mutualTLS",
        "description": "A device certificate issued by devreg, on the client-auth listener",
    },
}
