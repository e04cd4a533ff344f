"""Every call the vendors' pages document (`shared/reference/digicert-api.md`,
`shared/reference/flatpeak-api.md`, and the two seeds), with devreg's verdict on it and the
conformance tests that prove the verdict. README.md's vendor table is made from this list,
and a test keeps the two equal and checks that every test named here exists and every
conformance test is named here.

    .venv/bin/python -m tests.conformance.catalogue --markdown   # print the table
    .venv/bin/python -m tests.conformance.catalogue --write      # update README.md
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Literal

from tests.support.readme_blocks import README, block, replaced

BEGIN = "<!-- vendor-table: made by `python -m tests.conformance.catalogue --write` -->"
END = "<!-- /vendor-table -->"

Vendor = Literal["DigiCert", "Flatpeak"]
Verdict = Literal["same", "differs", "not served yet"]

DC = "https://dev.digicert.com/"
FP = "https://docs.flatpeak.com/"
IDM = "digicert-one/iot-device-manager/"


@dataclass(frozen=True)
class Call:
    vendor: Vendor
    call: str  # "METHOD path" as the vendor writes it, or a cross-cutting topic
    source: str  # the page that documents it (or the seed)
    verdict: Verdict
    note: str  # for "differs" and "not served yet": what and why; else what is checked
    tests: tuple[str, ...] = ()  # "module:function" under tests/conformance/


CALLS: tuple[Call, ...] = (
    Call(
        "DigiCert",
        "`x-api-key` authentication",
        DC + "get-started/error-handling-rate-limits.html",
        "same",
        "401 `invalid_api_key` for a missing or unknown key, 403 `access_denied` for a key "
        "that may not act",
        ("digicert.test_devices:test_a_missing_or_unknown_api_key_is_401_invalid_api_key",),
    ),
    Call(
        "DigiCert",
        "error envelope under `/iot/`",
        DC + "get-started/error-handling-rate-limits.html",
        "same",
        '`{"errors": [{"code", "message"}]}` on every answer under `/iot/`, unknown paths (404 '
        "`resource_not_found`) and wrong methods included",
        ("digicert.test_devices:test_every_answer_under_iot_is_in_digicerts_envelope",),
    ),
    Call(
        "DigiCert",
        "429 with `Retry-After`",
        DC + "get-started/error-handling-rate-limits.html",
        "same",
        "seconds; ONE's own 429 code was not captured, devreg says `rate_limit_exceeded`",
        ("digicert.test_limits:test_too_many_requests_carry_retry_after",),
    ),
    Call(
        "DigiCert",
        "`POST /iot/api/v2/device`",
        DC + IDM + "iot-devices-v2/create-device/",
        "same",
        "201 with the device object, `created == updated`, `ACTIVE`; a duplicate identifier is "
        "400 `invalid_input` in DigiCert's words",
        (
            "digicert.test_devices:test_create_device_as_documented",
            "digicert.test_devices:test_a_duplicate_identifier_is_refused_in_digicerts_words",
        ),
    ),
    Call(
        "DigiCert",
        "`GET /iot/api/v2/device`",
        DC + "pt-br/" + IDM + "iot-devices-v2/device-list/",
        "same",
        "`{limit, offset, total, records}`, `limit` 20 and `offset` 0 by default, date filters "
        "as `YYYY-MM-DD`, the page's `upated_to` spelling too",
        (
            "digicert.test_devices:test_device_list_envelope_and_defaults",
            "digicert.test_devices:test_openwifi_lookup_by_identifier_and_updated_from",
            "digicert.test_devices:test_date_filters_take_days_and_the_upated_to_spelling",
        ),
    ),
    Call(
        "DigiCert",
        "`GET /iot/api/v2/device/{device_id}`",
        "seed 003 (cross-references)",
        "same",
        "200 with the device object; an unknown id is seed 003's 400 `entity_not_found`",
        ("digicert.test_devices:test_get_device_details",),
    ),
    Call(
        "DigiCert",
        "`PUT /iot/api/v2/device/{device_id}`",
        "seed 003 (cross-references)",
        "same",
        "201; `fields` replaced as a whole, the `device_api_allow_*` flags set; the object "
        "read with GET is accepted back",
        (
            "digicert.test_devices:test_update_by_id_sets_fields_and_flags",
            "digicert.test_devices:test_a_device_read_back_and_put_is_accepted",
        ),
    ),
    Call(
        "DigiCert",
        "`PUT /iot/api/v2/device/{device_id}/disable`",
        DC + "de/" + IDM + "iot-devices-v2/disable-device/",
        "differs",
        '200 with the device, `DISABLED`, as documented; an unknown id says "Device with id … '
        'does not exist" (seed 003\'s words) where this page writes "ID"',
        ("digicert.test_lifecycle:test_disable_answers_the_device_disabled",),
    ),
    Call(
        "DigiCert",
        "`PUT /iot/api/v2/device/{device_id}/enable`",
        "named by the disable page",
        "same",
        "200 with the device, `ACTIVE`",
        ("digicert.test_lifecycle:test_enable_answers_the_device_active",),
    ),
    Call(
        "DigiCert",
        "`DELETE /iot/api/v2/device/{device_id}`",
        DC + "es/" + IDM + "iot-devices/remove-device/ (v1)",
        "differs",
        "an archive as the v1 page shows: 200 with the device, `DELETED`, hidden, its "
        "identifier free; an unknown id is seed 003's 400 where the v1 page shows 404",
        ("digicert.test_lifecycle:test_delete_archives_the_device",),
    ),
    Call(
        "DigiCert",
        "`PUT /iot/api/v2/device/{device_id}/restore`",
        "named by the v1 archive page",
        "same",
        "200 with the device, `ACTIVE` again, unless its identifier was taken meanwhile",
        ("digicert.test_lifecycle:test_restore_brings_the_device_back",),
    ),
    Call(
        "DigiCert",
        "`GET /iot/api/v2/device/{device_id}` (client authentication)",
        DC + "de/" + IDM + "iot-devices-v2/get-device-details-client-auth/",
        "same",
        "200 with the device to its own certificate, as OpenWiFi's firmware reads it",
        ("digicert.test_client_auth:test_client_auth_get_as_openwifi_reads_it",),
    ),
    Call(
        "DigiCert",
        "`PUT /iot/api/v2/device/{device_id}` (client authentication)",
        "seed 003",
        "differs",
        "201 with the device, as the seed shows; any id but the device's own, existing or"
        " not, is 403 `access_denied` where the seed shows 400 `entity_not_found` for an"
        " unknown one: which ids exist is not a device's to learn",
        ("digicert.test_client_auth:test_client_auth_update_as_seed_003",),
    ),
    Call(
        "DigiCert",
        "`POST /iot/api/v2/device/{device_id}/renew` (client authentication)",
        DC + "ja/" + IDM + "iot-devices-v2/renew-device-certificate-client-auth/",
        "differs",
        "200 `{certificate_request_id, status: AUTO_APPROVED, result: SUCCESS, certificate_id, "
        "pem}` for a `csr`; the page's `certificate_profile_attributes` and "
        "`device_attributes` are refused (400) until enrollment profiles exist (#16), and "
        "`pem` is the leaf alone",
        (
            "digicert.test_client_auth:test_client_auth_renew_with_a_csr",
            "digicert.test_client_auth:test_renew_attributes_are_refused_by_name",
        ),
    ),
    Call(
        "DigiCert",
        "v1 devices by identifier (`/iot/api/v1/device…`)",
        DC + "de/" + IDM + "iot-devices/update-device-fields/",
        "not served yet",
        "devreg serves the v2 calls by id, which DigiCert recommends since October 2020; v1 "
        "paths answer 404 `resource_not_found`",
        ("digicert.test_devices:test_v1_paths_answer_not_found_in_digicerts_envelope",),
    ),
    Call(
        "DigiCert",
        "`POST /iot/api/v1/certificate`, `…/{id}/renew`, `…/{id}/revoke`, `GET "
        "/iot/api/v1/certificate`",
        DC + "it/" + IDM + "iot-certificates/request-certificate/",
        "not served yet",
        "#16; devreg's own certificate calls are `POST /iot/api/v2/device/{id}/certificate` "
        "and `PUT /iot/api/v2/certificate/{id}/revoke`",
        ("digicert.test_devices:test_v1_paths_answer_not_found_in_digicerts_envelope",),
    ),
    Call(
        "DigiCert",
        "enrollment profiles, passcodes, authentication certificates (v1)",
        DC + "de/" + IDM + "enrollment-profiles/enrollment-profile-specification/",
        "not served yet",
        "#16",
    ),
    Call(
        "DigiCert",
        "EST per enrollment profile (`/.well-known/est/IOT_<label>/…`)",
        "DigiCert trustcore sample",
        "not served yet",
        "#16; devreg serves RFC 7030's unlabelled paths on its EST listener",
    ),
    Call(
        "Flatpeak",
        "`GET /login`",
        FP + "api-reference/login/create-a-bearer-token",
        "differs",
        "200 `{bearer_token, expires_in: 3600, live_mode}`, an HS256 JWT with `account_id`, "
        "`live_mode`, `sub`, `exp`, `nbf`, `iat`; its `iss` is `devreg`, not `FlatPeakAPI` "
        "(devreg is not Flatpeak), and it carries `kid` and `aud` too",
        ("flatpeak.test_devices:test_login_as_documented",),
    ),
    Call(
        "Flatpeak",
        "test mode (`sk_test_…` keys)",
        FP + "guides/system/test-mode",
        "same",
        "the key decides the mode; test objects carry `live_mode: false` and are apart",
        ("flatpeak.test_devices:test_test_keys_make_test_mode_objects",),
    ),
    Call(
        "Flatpeak",
        "`POST /devices`",
        FP + "api-reference/anode/devices/",
        "same",
        "201 with the device; `reference_id` optional",
        ("flatpeak.test_devices:test_create_device_with_and_without_reference",),
    ),
    Call(
        "Flatpeak",
        "`GET /devices`",
        FP + "api-reference/devices/",
        "same",
        "`{object: list, url: /devices, has_more, data}`, newest first, 30 by default, `limit` "
        "1 to 100, `starting_after`/`ending_before`, `reference_id`",
        (
            "flatpeak.test_devices:test_list_newest_first_in_pages_of_30",
            "flatpeak.test_devices:test_list_cursors_and_reference_filter",
        ),
    ),
    Call(
        "Flatpeak",
        "`GET /devices/{id}`",
        FP + "api-reference/devices/",
        "same",
        "200 with the device; unknown: 404 `not_found`",
        ("flatpeak.test_devices:test_get_device",),
    ),
    Call(
        "Flatpeak",
        "`PATCH /devices/{id}`",
        "seed 000",
        "same",
        "200; what is not given stays; 403, 404, 409 as the seed shows",
        ("flatpeak.test_devices:test_patch_as_seed_000",),
    ),
    Call(
        "Flatpeak",
        "`DELETE /devices/{id}`",
        FP + "api-reference/devices/",
        "differs",
        'the page\'s answer was not captured: devreg answers 202 `{"message": "Accepted"}` and '
        "the device is gone",
        ("flatpeak.test_devices:test_delete_device",),
    ),
    Call(
        "Flatpeak",
        "device ids",
        FP + "api-reference/anode/devices/",
        "differs",
        "`dev_` + 32 hex where the examples show 24 (ids are opaque to clients)",
        ("flatpeak.test_devices:test_create_device_with_and_without_reference",),
    ),
    Call(
        "Flatpeak",
        "error object",
        FP + "guides/system/errors",
        "same",
        "`object, live_mode, context, type, code, message, time_created` on every error",
        ("flatpeak.test_errors:test_every_error_is_the_whole_error_object",),
    ),
    Call(
        "Flatpeak",
        "429",
        "seed 000",
        "same",
        "`rate_limit`/`too_many_requests`, the seed's message",
        ("flatpeak.test_errors:test_too_many_requests_as_seed_000",),
    ),
    Call(
        "Flatpeak",
        "versions (`Flatpeak-Version`)",
        FP + "guides/system/versioning",
        "same",
        "`2024-08-24.zero` and `2025-09-14.anode`; an account default; the header on every "
        "answer; older than the default or unknown: 422 `api_version_not_supported`",
        (
            "flatpeak.test_versions:test_every_answer_names_the_version_used",
            "flatpeak.test_versions:test_a_version_older_than_the_default_is_refused",
            "flatpeak.test_versions:test_a_version_devreg_does_not_serve_is_refused",
        ),
    ),
    Call(
        "Flatpeak",
        "busbar and yotta device shapes",
        FP + "api-reference/busbar/",
        "not served yet",
        "their devices need locations, types and properties that devreg does not hold; asking "
        "for them is 422 `api_version_not_supported`",
    ),
    Call(
        "Flatpeak",
        "account disabled (422 `account_disabled`)",
        FP + "guides/system/errors",
        "same",
        "`devreg account disable`: every endpoint, `/login` included, answers 422 `api_error` /"
        ' `account_disabled` "Your account is disabled" with its context and mode, until'
        " `account enable`",
        ("flatpeak.test_errors:test_a_disabled_account_is_flatpeak_s_422_on_every_endpoint",),
    ),
    Call(
        "Flatpeak",
        "`GET /events`, `GET /events/{id}`, webhooks",
        FP + "api-guides/system/events",
        "not served yet",
        "#17",
    ),
)


def markdown() -> str:
    lines = [
        "| vendor | call | verdict | what devreg does | documented at |",
        "|---|---|---|---|---|",
    ]
    for call in CALLS:
        url, _, rest = call.source.partition(" ")
        source = f"<{url}> {rest}".strip() if url.startswith("https://") else call.source
        lines.append(f"| {call.vendor} | {call.call} | {call.verdict} | {call.note} | {source} |")
    return "\n".join(lines)


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
