"""The credential matrix (issue 6): every kind of credential against every endpoint, with
the answer each cell must get.

This module is the table and nothing else: `test_credential_matrix.py` sends every cell to
real `devreg serve` processes and asserts it; README.md's Security section holds the
markdown made from it here, and a test keeps the two equal.

    .venv/bin/python -m tests.security.credential_matrix --markdown   # print the table
    .venv/bin/python -m tests.security.credential_matrix --write      # update README.md
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Literal

from tests.support.readme_blocks import README, block, replaced

D = "/iot/api/v2"
EST = "/.well-known/est/"
BEGIN = "<!-- credential-matrix: made by `python -m tests.security.credential_matrix --write` -->"
END = "<!-- /credential-matrix -->"

Envelope = Literal["F", "D", "EST", "public"]
Endpoint = tuple[str, str]  # (method, path template as the router has it)

# What a cell expects: "ok" (the endpoint's success status), "own" (success, but scoped to
# the credential's own account, mode or device: the target is neither shown nor changed),
# an error status in the column's envelope, or "TLS" (the handshake is refused).
OUTCOMES = frozenset({"ok", "own", "400", "401", "403", "404", "422", "TLS"})


@dataclass(frozen=True)
class Column:
    title: str
    envelope: Envelope
    endpoints: tuple[Endpoint, ...]


COLUMNS: tuple[Column, ...] = (
    Column("login", "F", (("GET", "/login"),)),
    Column("F create", "F", (("POST", "/devices"),)),
    Column("F list", "F", (("GET", "/devices"),)),
    Column("F GET", "F", (("GET", "/devices/{id}"),)),
    Column("F write", "F", (("PATCH", "/devices/{id}"), ("DELETE", "/devices/{id}"))),
    Column(
        "D list reads",
        "D",
        (
            ("GET", D + "/division"),
            ("GET", D + "/device-profile"),
            ("GET", D + "/audit-log"),
        ),
    ),
    Column("D division POST", "D", (("POST", D + "/division"),)),
    Column("D devices", "D", (("GET", D + "/device"),)),
    Column(
        "D named reads",
        "D",
        (("GET", D + "/division/{id}"), ("GET", D + "/device-profile/{id}")),
    ),
    Column(
        "D named writes",
        "D",
        (("POST", D + "/device-profile"), ("POST", D + "/device")),
    ),
    Column("D profile PUT", "D", (("PUT", D + "/device-profile/{id}"),)),
    Column(
        "D admin reads",
        "D",
        (("GET", D + "/device/{id}/certificate"), ("GET", D + "/device/{id}/history")),
    ),
    Column(
        "D admin writes",
        "D",
        (
            ("DELETE", D + "/device/{id}"),
            ("PUT", D + "/device/{id}/disable"),
            ("PUT", D + "/device/{id}/enable"),
            ("PUT", D + "/device/{id}/restore"),
            ("POST", D + "/device/{id}/certificate"),
            ("PUT", D + "/device/{id}/certificate/revoke"),
            ("POST", D + "/device/{id}/enrollment-secret"),
            ("PUT", D + "/device/{id}/enrollment-secret/revoke"),
            ("PUT", D + "/certificate/{id}/revoke"),
        ),
    ),
    Column("D GET", "D", (("GET", D + "/device/{id}"),)),
    Column("D PUT", "D", (("PUT", D + "/device/{id}"),)),
    Column("D renew", "D", (("POST", D + "/device/{id}/renew"),)),
    Column("D key list", "D", (("GET", D + "/api-key"),)),
    Column("D key POST", "D", (("POST", D + "/api-key"),)),
    Column("D key GET", "D", (("GET", D + "/api-key/{id}"),)),
    Column(
        "D key writes",
        "D",
        (("PUT", D + "/api-key/{id}/revoke"), ("POST", D + "/api-key/{id}/rotate")),
    ),
    Column("cacerts", "EST", (("GET", EST + "cacerts"),)),
    Column("enroll", "EST", (("POST", EST + "simpleenroll"),)),
    Column("reenroll", "EST", (("POST", EST + "simplereenroll"),)),
    Column(
        "public",
        "public",
        (
            ("GET", "/healthz"),
            ("GET", "/ca.pem"),
            ("GET", "/crl.pem"),
            ("GET", "/crl.der"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
            ("GET", "/docs/static/{name}"),
        ),
    ),
)

# What each column means to a reader of the README.
COLUMN_NOTES: dict[str, str] = {
    "login": "`GET /login`",
    "F create": "`POST /devices`",
    "F list": "`GET /devices?reference_id=` (the target's reference)",
    "F GET": "`GET /devices/{id}` (the target)",
    "F write": "`PATCH`, `DELETE /devices/{id}` (the target)",
    "D list reads": "`GET /division`, `GET /device-profile`, `GET /audit-log` (lists hold the"
    " target's division and profile, the log its division's creation)",
    "D division POST": "`POST /division`",
    "D devices": "`GET /device?device_identifier=` (the target's identifier)",
    "D named reads": "`GET /division/{id}`, `GET /device-profile/{id}` (the target's)",
    "D named writes": "`POST /device-profile` in the target's division, `POST /device` in"
    " its division and profile",
    "D profile PUT": "`PUT /device-profile/{id}` (the target's profile)",
    "D admin reads": "`GET /device/{id}/certificate`, `GET …/history` (the target's)",
    "D admin writes": "`DELETE /device/{id}`, `PUT …/disable`, `PUT …/enable`, `PUT …/restore`"
    " (of the target once deleted), `POST …/certificate`, `PUT …/certificate/revoke`, `POST"
    " …/enrollment-secret`, `PUT …/enrollment-secret/revoke`, `PUT /certificate/{id}/revoke`"
    " (the target's certificate)",
    "D GET": "`GET /device/{id}` (API key or the device's certificate)",
    "D PUT": "`PUT /device/{id}` (API key or the device's certificate)",
    "D renew": "`POST /device/{id}/renew` (the device's certificate only)",
    "D key list": "`GET /api-key` (the list holds the target's key: one of its account and mode)",
    "D key POST": "`POST /api-key`, asking for a read key",
    "D key GET": "`GET /api-key/{id}` (the target's key)",
    "D key writes": "`PUT /api-key/{id}/revoke`, `POST /api-key/{id}/rotate` with"
    " `overlap_hours` 0 (the target's key: a key made for the cell when it succeeds, never one"
    " another cell uses)",
    "cacerts": "EST `GET /.well-known/est/cacerts`",
    "enroll": "EST `POST …/simpleenroll`, a request for the target device",
    "reenroll": "EST `POST …/simplereenroll`, a request for the target device",
    "public": "`/healthz`, `/ca.pem`, `/crl.pem`, `/crl.der`, `/openapi.json`, `/docs`,"
    " `/docs/static/{name}`: the same answer to everyone",
}


@dataclass(frozen=True)
class Row:
    key: str  # how the tests name the credential
    label: str  # how the README names it
    expect: str  # one outcome per column, in COLUMNS' order; "|" only groups them

    @property
    def outcomes(self) -> tuple[str, ...]:
        found = tuple(word for word in self.expect.split() if word != "|")
        assert len(found) == len(COLUMNS), (self.key, len(found))
        assert set(found) <= OUTCOMES, (self.key, set(found) - OUTCOMES)
        return found

    def outcome(self, column: Column) -> str:
        return self.outcomes[COLUMNS.index(column)]


#  login, F create, list, GET, write | D list reads, division POST, devices, named reads,
#  named writes, profile PUT, admin reads, admin writes, GET, PUT, renew |
#  D key list, key POST, key GET, key writes | EST cacerts, enroll, reenroll | public
REFUSED = (
    "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
    "| 401 401 401 401 | ok  401 401 | ok"
)
ROWS: tuple[Row, ...] = (
    # Nothing, or something that is no credential at all.
    Row("none", "none", REFUSED),
    Row("bearer-garbage", "`Authorization: Bearer` garbage", REFUSED),
    Row("basic-not-base64", "`Authorization: Basic` that is not base64", REFUSED),
    Row("wrong-scheme", "`Authorization: Digest …` (another scheme)", REFUSED),
    Row("api-key-garbage", "`x-api-key` garbage", REFUSED),
    # Bearer tokens that devreg did not issue as they are.
    Row("token-expired", "expired token (devreg's key, `exp` passed)", REFUSED),
    Row("token-other-key", "token signed with another key", REFUSED),
    Row("token-no-kid", "token with devreg's key, no `kid` header", REFUSED),
    Row("token-other-kid", "token with devreg's key, `kid` naming another key", REFUSED),
    Row("token-long-lived", "token with devreg's key, `exp` 30 years after `iat`", REFUSED),
    Row("token-no-account", "token with devreg's key naming no account", REFUSED),
    Row("token-alg-none", "token with `alg: none`, no signature", REFUSED),
    Row("token-hs512", "token re-signed `HS512` with devreg's key", REFUSED),
    Row("token-rs256", "token signed `RS256` with an RSA key", REFUSED),
    Row("token-tampered", "test token edited to `live_mode: true`", REFUSED),
    # The owner's own credentials, each where it belongs and where it does not.
    Row("basic-owner", "Basic `account_id:live_key` (the login)",
        "ok  403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("token-owner", "owner's live token (F)",
        "403 ok  ok  ok  ok  | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("key-owner", "owner's live key (D `x-api-key`)",
        "403 403 403 403 403 | ok  ok  ok  ok  ok  ok  ok  ok  ok  ok  403 "
        "| ok  ok  ok  ok  | ok  401 401 | ok"),
    Row("key-as-bearer", "owner's live key sent as `Bearer` (D on F)", REFUSED),
    Row("token-as-key", "owner's live token sent as `x-api-key` (F on D)", REFUSED),
    # Valid credentials of someone else, or of the other mode.
    Row("token-other-account", "another account's live token",
        "403 own own 404 404 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("key-other-account", "another account's live key",
        "403 403 403 403 403 | own own own 400 400 400 400 400 400 400 403 "
        "| own own 400 400 | ok  401 401 | ok"),
    Row("token-test-on-live", "owner's test token, live target",
        "403 own own 404 404 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("token-live-on-test", "owner's live token, test target",
        "403 own own 404 404 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("key-test-on-live", "owner's test key, live target",
        "403 403 403 403 403 | ok  ok  own ok  ok  403 400 400 400 400 403 "
        "| own own 400 400 | ok  401 401 | ok"),
    Row("key-live-on-test", "owner's live key, test target",
        "403 403 403 403 403 | ok  ok  own ok  ok  ok  400 400 400 400 403 "
        "| own own 400 400 | ok  401 401 | ok"),
    # Keys the owner made read-only, revoked or let expire, and tokens made from them.
    Row("key-read", "owner's live read key (`scope` read)",
        "403 403 403 403 403 | ok  403 ok  ok  403 403 ok  403 ok  403 403 "
        "| 403 403 403 403 | ok  401 401 | ok"),
    Row("token-read", "token from the owner's live read key",
        "403 403 ok  ok  403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    # Keys limited to divisions (and tokens made from them): to another division of the
    # owner's, then to the target's own division.
    Row("key-limited", "owner's live key limited to another division",
        "403 403 403 403 403 | own 403 own 400 400 400 400 400 400 400 403 "
        "| own 403 400 400 | ok  401 401 | ok"),
    Row("token-limited", "token from the owner's key limited to another division",
        "403 403 own 404 404 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("key-limited-inside", "owner's live key limited to the target's division",
        "403 403 403 403 403 | ok  403 ok  ok  ok  ok  ok  ok  ok  ok  403 "
        "| own 403 400 400 | ok  401 401 | ok"),
    Row("token-limited-inside", "token from the owner's key limited to the target's division",
        "403 403 ok  ok  ok  | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("key-revoked", "owner's revoked live key", REFUSED),
    Row("token-of-revoked-key", "token made from a live key before it was revoked", REFUSED),
    Row("key-expired", "owner's expired live key (rotated, its overlap over)", REFUSED),
    Row("token-of-expired-key", "token made from a live key before it expired", REFUSED),
    # Credentials of a disabled account, each made before it was disabled; the target is
    # that account's live device.
    Row("key-disabled-account", "live key of a disabled account",
        "403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403 "
        "| 403 403 403 403 | ok  401 401 | ok"),
    Row("token-disabled-account", "live token of a disabled account",
        "403 422 422 422 422 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("basic-disabled-account", "Basic `account_id:live_key` of a disabled account",
        "422 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  401 401 | ok"),
    Row("cert-disabled-account", "certificate of a disabled account's device",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("secret-disabled-account", "enrollment secret of a disabled account's device",
        REFUSED),
    # EST one-time enrollment secrets (HTTP Basic `<device UUID>:<secret>`).
    Row("secret-own", "enrollment secret of the target",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | ok  ok  401 | ok"),
    Row("secret-other-device", "enrollment secret of another device", REFUSED),
    Row("secret-used", "enrollment secret already used", REFUSED),
    Row("secret-disabled", "enrollment secret of the target, disabled", REFUSED),
    Row("secret-deleted", "enrollment secret of the target, deleted", REFUSED),
    # The target's own valid certificate in a proxy's header, from a peer that is not a
    # trusted proxy: no credential at all.
    Row("xssl-no-proxy", "`X-SSL-Client-Cert`, no `--trusted-proxy`",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | 404 404 404 | ok"),
    Row("xfcc-no-proxy", "`X-Forwarded-Client-Cert`, no `--trusted-proxy`",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | 404 404 404 | ok"),
    Row("xssl-other-proxy", "`X-SSL-Client-Cert`, peer is not the `--trusted-proxy`",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | 404 404 404 | ok"),
    Row("xfcc-other-proxy", "`X-Forwarded-Client-Cert`, peer is not the `--trusted-proxy`",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 401 401 403 "
        "| 401 401 401 401 | 404 404 404 | ok"),
    # The same header from the proxy a server does trust: the target's certificate counts.
    Row("xssl-trusted-proxy", "`X-SSL-Client-Cert` from the `--trusted-proxy` (control)",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 ok  ok  ok  "
        "| 401 401 401 401 | ok  ok  ok  | ok"),
    # Client certificates, on the client-auth listener (EST: on the EST port).
    Row("cert-own", "certificate of the target",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 ok  ok  ok  "
        "| 401 401 401 401 | ok  ok  ok  | ok"),
    Row("cert-other-device", "certificate of another device",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  own 400 | ok"),
    Row("cert-other-account", "certificate of another account's device",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  own 400 | ok"),
    Row("cert-test-device", "certificate of a test device, live target",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  own 400 | ok"),
    Row("cert-other-forwarding", "another device's, the target's in `X-SSL-Client-Cert` too",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  own 400 | ok"),
    Row("cert-revoked", "revoked certificate of the target",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("cert-disabled", "certificate of the target, disabled",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("cert-deleted", "certificate of the target, deleted",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("cert-read-off", "certificate of the target, `device_api_allow_read` false",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 ok  ok  "
        "| 401 401 401 401 | ok  ok  ok  | ok"),
    Row("cert-write-off", "… of the target, `device_api_allow_write` false",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 ok  403 ok  "
        "| 401 401 401 401 | ok  ok  ok  | ok"),
    Row("cert-renew-off", "… of the target, `device_api_allow_renew_certificate` false",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 ok  ok  403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("cert-unregistered", "devreg's CA, registered to no device",
        "403 403 403 403 403 | 401 401 401 401 401 401 401 401 403 403 403 "
        "| 401 401 401 401 | ok  403 403 | ok"),
    Row("cert-expired", "expired, from devreg's CA",
        "TLS TLS TLS TLS TLS | TLS TLS TLS TLS TLS TLS TLS TLS TLS TLS TLS "
        "| TLS TLS TLS TLS | TLS TLS TLS | TLS"),
    Row("cert-untrusted-ca", "from a CA devreg does not trust",
        "TLS TLS TLS TLS TLS | TLS TLS TLS TLS TLS TLS TLS TLS TLS TLS TLS "
        "| TLS TLS TLS TLS | TLS TLS TLS | TLS"),
)  # fmt: skip

LEGEND = """\
How each row is sent: header credentials to the plain listener (EST columns: to the EST
port, over TLS without a client certificate). The forwarded-certificate rows carry the
target's own valid certificate, URL-escaped as nginx or Envoy send it, to the plain
listener (EST columns too) of a server without `--trusted-proxy`, of one whose
`--trusted-proxy` is another address (the request also claims that address in
`X-Forwarded-For`), and, as the control, of one that trusts the sender. Certificate rows go
over TLS with that client certificate to the client-auth listener (EST columns: to the EST
port). The target is a live device of the owner's account unless the row says otherwise; in
the rows that say "of the target" and the `device_api_allow_*` rows the certificate or
secret is the target's own. The disabled account's rows are about that account's own live
device (its certificate and secret are that device's), the read, limited, revoked and
expired keys' rows about the owner's; each key row's target key is one of the target's
account and mode (not limited: a limited key neither sees nor manages it). A limited key
reads the audit log one object of its divisions at a time (`object_id`, as the column
asks), and finds nothing for an object outside them; `POST /device` without a division
or profile, and F's `POST /devices` (both land in the default division), are its 403.

- **ok**: the endpoint's success (200; 201 for creates, D's `PUT /device/{id}`, the
  enrollment secret and a key's rotation; 202 for F's `DELETE`).
- **own**: success, but scoped to the credential's own account, mode or device: lists do
  not show the target, creations land in the caller's account or mode, EST issues the
  certificate to the device that presented its certificate (named after that device,
  whatever the request asked for); the target's records are unchanged.
- F columns: **403** `invalid_request`/`access_denied`, **404** `not_found`, **422**
  `api_error`/`account_disabled` (seed 000's error object). D columns: **400**
  `entity_not_found`, **401** `invalid_api_key`, **403** `access_denied`
  (`{"errors": [...]}`). EST columns: plain text; **401** with
  `WWW-Authenticate: Basic`, **400** a request for another device's subject, **404** EST is
  not served on the plain listener without a verified client certificate.
- **TLS**: the TLS handshake is refused; no request reaches devreg.
- Every refused request leaves the database exactly as it was: the test compares every
  table (all but the keys' `last_used_at`, which each server flushes once a minute on its
  own), and the target's records as the owner reads them through the API, before and
  after."""


def markdown() -> str:
    """The README's table: rows are credentials, columns groups of endpoints."""
    lines = [
        "| credential | " + " | ".join(column.title for column in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for row in ROWS:
        lines.append(f"| {row.label} | " + " | ".join(row.outcomes) + " |")
    notes = [f"- **{title}**: {note}" for title, note in COLUMN_NOTES.items()]
    return "\n".join([*lines, "", "Columns:", "", *notes, "", LEGEND])


def readme_block(readme: str) -> str:
    return block(readme, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the table")
    action.add_argument("--write", action="store_true", help="put the table in README.md")
    options = parser.parse_args(argv)
    if options.markdown:
        sys.stdout.write(markdown() + "\n")
    else:
        README.write_text(replaced(README.read_text(), BEGIN, END, markdown()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
