"""The entry rule as the outbox tells it: a connection attempt is not a credential.

Every way in (the modal's sign-in window, the modal's form, the API) is driven against the
sandbox provider under live_server, or a pytest-httpserver provider that is down. An attempt
that fails at entry leaves no credential and no ``credential.created``; the same identity again
leaves one credential and exactly one ``credential.created``, and every event names it.
"""

from __future__ import annotations

import json

import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from integrations.models import Credential, Event, OAuthAttempt
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH
from tests.api.conftest import client_for, error_of
from tests.connect.helpers import CLIENT_ID, path_and_query, provider_answer

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_KEY = "sbx_" + "0" * 24


def start(client, world, hx, **data) -> tuple[OAuthAttempt, str]:
    """Press "Connect" in the modal: the answer names the URL the popup opens."""
    response = client.post(world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), data, **hx)
    assert response.status_code == 200, response.content.decode()
    opened = json.loads(response["HX-Trigger"])["portal-oauth-open"]
    return OAuthAttempt.objects.get(pk=opened["attempt"]), opened["url"]


def callback(client, url: str):
    path, query = path_and_query(url)
    assert path == "/connect/oauth/callback/"
    return client.get(path, query)


def page_events(response) -> list[dict]:
    """The events the modal hands to the embedding page (HX-Trigger)."""
    return json.loads(response["HX-Trigger"])["portal-events"]["events"]


def outbox(world) -> list[Event]:
    return list(
        Event.objects.filter(tenant=world.tenant, type__startswith="credential.").order_by(
            "created_at"
        )
    )


def assert_the_outbox_tells_the_truth(world) -> None:
    """DESIGN's rule for the event stream: every ``credential.created`` names a credential that
    exists or has a later ``credential.deleted``, and no credential is created twice."""
    events = outbox(world)
    created = [e.data["credential_id"] for e in events if e.type == "credential.created"]
    deleted = {e.data["credential_id"] for e in events if e.type == "credential.deleted"}
    assert len(created) == len(set(created)), created
    existing = {str(pk) for pk in Credential.objects.values_list("pk", flat=True)}
    phantoms = set(created) - existing - deleted
    assert not phantoms, f"credential.created for credentials that never existed: {phantoms}"


def the_api_key_provider_is_down(world, httpserver) -> None:
    httpserver.expect_request("/down/me").respond_with_data("maintenance", status=503)
    app = world.apps[SANDBOX_API_KEY]
    app.api_base_url = httpserver.url_for("/down")
    app.save(update_fields=["api_base_url"])


# --- The modal's sign-in window --------------------------------------------------------------


def test_denied_consent_leaves_no_credential_and_no_credential_created(client, world, hx):
    attempt, url = start(client, world, hx)

    callback(client, provider_answer(url, base_url=world.base_url, allow=False))

    assert not Credential.objects.exists()
    assert [event.type for event in outbox(world)] == ["credential.authorization_failed"]
    failed = outbox(world)[0].data
    assert failed["reason"] == "access_denied"
    assert "credential_id" not in failed  # it names no credential
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert page_events(status)[0]["event"] == "did-fail-authorization-verification"
    assert page_events(status)[0]["data"]["authorizationId"] is None
    assert_the_outbox_tells_the_truth(world)


@pytest.mark.parametrize("reason", ["closed", "cancelled"])
def test_closing_or_cancelling_the_sign_in_leaves_no_credential_even_when_the_answer_comes_late(
    client, world, hx, reason
):
    attempt, url = start(client, world, hx)
    late_answer = provider_answer(url, base_url=world.base_url)

    ended = client.post(world.modal_url(f"oauth/{attempt.pk}/cancel/"), {"reason": reason}, **hx)
    late = callback(client, late_answer)

    assert ended.status_code == 286
    assert page_events(ended)[0]["event"] == "did-fail-authorization-verification"
    assert page_events(ended)[0]["data"]["authorizationId"] is None
    assert page_events(ended)[0]["data"]["reason"] == reason
    assert "was cancelled in the connect window" in late.content.decode()
    assert not Credential.objects.exists()
    assert [event.type for event in outbox(world)] == ["credential.authorization_failed"]
    assert outbox(world)[0].data["reason"] == reason
    assert not AccessToken.objects.filter(application__client_id=CLIENT_ID).exists()
    assert_the_outbox_tells_the_truth(world)


def test_signing_in_twice_as_the_same_identity_leaves_one_credential_and_one_created_event(
    client, world, hx
):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url))
    again, url = start(client, world, hx)

    callback(client, provider_answer(url, base_url=world.base_url))

    credential = Credential.objects.get(end_user=world.end_user)
    events = outbox(world)
    assert [event.type for event in events] == [
        "credential.created",
        "credential.verified",
        "credential.reconnected",
    ]
    assert {event.data["credential_id"] for event in events} == {str(credential.pk)}
    assert events[-1].data["already_exists"] is True
    status = client.get(world.modal_url(f"oauth/{again.pk}/"), **hx)
    assert page_events(status)[0]["event"] == "did-add-authorization"
    assert page_events(status)[0]["data"]["authorizationId"] == str(credential.pk)
    assert page_events(status)[0]["data"]["alreadyExists"] is True
    assert_the_outbox_tells_the_truth(world)


def test_tokens_the_provider_cannot_verify_make_no_credential_and_are_handed_back(
    client, world, hx, httpserver
):
    httpserver.expect_request("/down/me").respond_with_data("maintenance", status=503)
    app = world.apps[SANDBOX_OAUTH]
    app.api_base_url = httpserver.url_for("/down")
    app.save(update_fields=["api_base_url"])
    attempt, url = start(client, world, hx)

    answer = callback(client, provider_answer(url, base_url=world.base_url))

    assert "so nothing was connected; try again in a minute" in answer.content.decode()
    assert not Credential.objects.exists()
    assert [event.type for event in outbox(world)] == ["credential.authorization_failed"]
    assert outbox(world)[0].data["reason"] == "provider_unavailable"
    # The sandbox issued tokens, and the ones we did not keep were revoked there.
    issued = RefreshToken.objects.filter(application__client_id=CLIENT_ID)
    assert issued.exists()
    assert not issued.filter(revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(application__client_id=CLIENT_ID).exists()
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert page_events(status)[0]["data"]["authorizationId"] is None
    assert page_events(status)[0]["data"]["reason"] == "provider_unavailable"
    assert_the_outbox_tells_the_truth(world)


# --- The modal's form -------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["wrong key", "provider down"])
def test_a_key_that_fails_at_entry_in_the_modal_emits_no_credential_event(
    client, world, hx, httpserver, failure
):
    key = WRONG_KEY
    if failure == "provider down":
        the_api_key_provider_is_down(world, httpserver)
        key = world.api_key()

    response = client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": key, "portal_label": "Work"},
        **hx,
    )

    assert response.status_code == 422
    assert not Credential.objects.exists()
    assert outbox(world) == []
    assert page_events(response)[0]["event"] == "did-fail-authorization-verification"
    assert page_events(response)[0]["data"]["authorizationId"] is None


def test_the_same_key_identity_twice_in_the_modal_leaves_one_credential_and_one_created_event(
    client, world, hx
):
    url = world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/")
    first = client.post(url, {"api_key": world.api_key()}, **hx)
    second = client.post(url, {"api_key": world.api_key()}, **hx)

    credential = Credential.objects.get(end_user=world.end_user)
    assert page_events(first)[0]["data"]["authorizationId"] == str(credential.pk)
    assert page_events(second)[0]["data"]["authorizationId"] == str(credential.pk)
    assert page_events(second)[0]["data"]["alreadyExists"] is True
    events = outbox(world)
    assert [event.type for event in events].count("credential.created") == 1
    assert {event.data["credential_id"] for event in events} == {str(credential.pk)}
    assert_the_outbox_tells_the_truth(world)


# --- The API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [("wrong key", 422, "credential_rejected"), ("provider down", 503, "provider_unavailable")],
)
def test_a_key_that_fails_at_entry_through_the_api_emits_no_credential_event(
    world, httpserver, failure, status, code
):
    key = WRONG_KEY
    if failure == "provider down":
        the_api_key_provider_is_down(world, httpserver)
        key = world.api_key()

    response = client_for(world.tenant).post(
        "/api/v1/credentials",
        {"user": world.end_user.external_id, "app": SANDBOX_API_KEY, "fields": {"api_key": key}},
    )

    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert not Credential.objects.exists()
    assert outbox(world) == []


def test_the_same_key_identity_twice_through_the_api_leaves_one_credential_and_one_created_event(
    world,
):
    api = client_for(world.tenant)
    body = {"user": world.end_user.external_id, "app": SANDBOX_API_KEY}

    first = api.post("/api/v1/credentials", {**body, "fields": {"api_key": world.api_key()}})
    second = api.post("/api/v1/credentials", {**body, "fields": {"api_key": world.api_key()}})

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["already_existed"] is True
    assert second.json()["id"] == first.json()["id"]
    assert Credential.objects.filter(end_user=world.end_user).count() == 1
    events = outbox(world)
    assert [event.type for event in events].count("credential.created") == 1
    assert {event.data["credential_id"] for event in events} == {first.json()["id"]}
    assert_the_outbox_tells_the_truth(world)


def test_the_modal_and_the_api_connecting_the_same_identity_share_one_credential(client, world, hx):
    client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"), {"api_key": world.api_key()}, **hx
    )

    response = client_for(world.tenant).post(
        "/api/v1/credentials",
        {
            "user": world.end_user.external_id,
            "app": SANDBOX_API_KEY,
            "fields": {"api_key": world.api_key()},
        },
    )

    credential = Credential.objects.get(end_user=world.end_user)
    assert response.status_code == 200
    assert response.json()["id"] == str(credential.pk)
    assert [event.type for event in outbox(world)].count("credential.created") == 1
    assert_the_outbox_tells_the_truth(world)
