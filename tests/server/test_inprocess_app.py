"""The in-process app fixture itself (tests/support/inprocess.py): the app answers over
ASGI, its account's keys log in to dialect F tokens of their mode, and both dialects
serve the account."""

from __future__ import annotations

from tests.support.inprocess import AppClient


async def test_the_in_process_app_serves_its_account_in_both_dialects(
    app_client: AppClient,
) -> None:
    assert (await app_client.client.get("/healthz")).json() == {"status": "ok"}
    for live in (True, False):
        answer = await app_client.client.get(
            "/login", auth=(app_client.account.account_id, app_client.account.key(live))
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["live_mode"] is live
        listed = await (await app_client.f(live)).get("/devices")
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == []
    profiles = await app_client.d().get("/device-profile")
    assert profiles.status_code == 200, profiles.text
    # an unknown key is refused, in dialect D's envelope
    refused = await app_client.client.get("/iot/api/v2/device-profile", headers={"x-api-key": "x"})
    assert refused.status_code == 401 and set(refused.json()) == {"errors"}, refused.text
