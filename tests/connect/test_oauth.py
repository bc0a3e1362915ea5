"""OAuth2 from the modal against the sandbox provider: PKCE S256, a single-use state bound to the
session and the app, and every way a sign-in can go wrong leaving no credential behind."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from core.tokens import hash_token
from integrations.models import Credential, Event, OAuthAttempt
from sandbox.catalog import SANDBOX_OAUTH
from tests.connect.helpers import path_and_query, provider_answer

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, world, hx, **data) -> tuple[OAuthAttempt, str]:
    """Press "Connect" in the modal: the answer names the URL the popup opens."""
    response = client.post(world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), data, **hx)
    assert response.status_code == 200, response.content.decode()
    opened = json.loads(response["HX-Trigger"])["portal-oauth-open"]
    attempt = OAuthAttempt.objects.get(pk=opened["attempt"])
    return attempt, opened["url"]


def callback(client, url: str):
    path, query = path_and_query(url)
    assert path == "/connect/oauth/callback/"
    return client.get(path, query)


def credentials(world):
    return Credential.objects.filter(end_user=world.end_user)


def test_the_authorization_request_uses_pkce_s256_and_a_random_state_stored_hashed(
    client, world, hx
):
    attempt, url = start(client, world, hx)
    _, second_url = start(client, world, hx)
    _, query = path_and_query(url)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == world.base_url + "/connect/oauth/callback/"
    assert query["state"] != path_and_query(second_url)[1]["state"]
    assert len(query["state"]) >= 43
    assert attempt.state_hash == hash_token(query["state"])
    assert query["state"] not in json.dumps(
        list(OAuthAttempt.objects.values("state_hash", "return_query")), default=str
    )
    assert attempt.session_id == world.session.pk
    assert attempt.app.slug == SANDBOX_OAUTH
    assert attempt.expires_at - attempt.created_at == timedelta(minutes=10)
    assert attempt.has_secret  # the code verifier, sealed


def test_allowing_access_in_the_popup_connects_the_account_and_verifies_it(client, world, hx):
    attempt, url = start(client, world, hx)

    response = callback(client, provider_answer(url, base_url=world.base_url))

    assert response.status_code == 200
    assert "You're connected" in response.content.decode()
    credential = credentials(world).get()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.identity == "alice@sandbox.test"
    assert credential.expires_at is not None
    attempt.refresh_from_db()
    assert attempt.outcome == OAuthAttempt.Outcome.CONNECTED
    assert attempt.credential_id == credential.pk
    assert not attempt.has_secret  # the verifier is gone once used
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert status.status_code == 286
    events = json.loads(status["HX-Trigger"])["portal-events"]["events"]
    assert events == [
        {
            "event": "did-add-authorization",
            "data": {
                "identity": "alice@sandbox.test",
                "authorizationId": str(credential.pk),
                "flowId": None,
                "alreadyExists": False,
                "app": SANDBOX_OAUTH,
            },
        }
    ]


def test_a_replayed_state_is_refused_and_creates_nothing_more(client, world, hx):
    _, url = start(client, world, hx)
    answer = provider_answer(url, base_url=world.base_url)
    assert callback(client, answer).status_code == 200
    assert credentials(world).count() == 1

    replay = callback(client, answer)

    assert replay.status_code == 400
    assert "already used" in replay.content.decode()
    assert credentials(world).count() == 1


def test_a_forged_state_is_refused_with_a_clear_message_and_creates_nothing(client, world):
    response = client.get(
        "/connect/oauth/callback/", {"code": "stolen-code", "state": "made-up-state"}
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "did not start from your connect window" in body
    assert "nothing was connected" in body
    assert not credentials(world).exists()


def test_a_callback_without_any_state_is_refused(client, world):
    response = client.get("/connect/oauth/callback/", {"code": "a-code"})

    assert response.status_code == 400
    assert not credentials(world).exists()


def test_an_expired_state_is_refused_and_creates_nothing(client, world, hx):
    attempt, url = start(client, world, hx)
    answer = provider_answer(url, base_url=world.base_url)
    OAuthAttempt.objects.filter(pk=attempt.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = callback(client, answer)

    assert "took longer than 10 minutes" in response.content.decode()
    assert not credentials(world).exists()
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error_code) == ("failed", "state_expired")


def test_an_attempt_nobody_finishes_ends_after_ten_minutes_and_the_modal_stops_waiting(
    client, world, hx
):
    attempt, _ = start(client, world, hx)
    waiting = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert waiting.status_code == 204  # still waiting: polling goes on
    OAuthAttempt.objects.filter(pk=attempt.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    ended = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)

    assert ended.status_code == 286
    assert "not finished within 10 minutes" in ended.content.decode()


def test_denied_consent_says_so_and_creates_nothing(client, world, hx):
    attempt, url = start(client, world, hx)
    answer = provider_answer(url, base_url=world.base_url, allow=False)
    assert path_and_query(answer)[1]["error"] == "access_denied"

    response = callback(client, answer)

    assert "You did not allow access to your Sandbox (OAuth2) account" in (
        response.content.decode()
    )
    assert not credentials(world).exists()
    attempt.refresh_from_db()
    assert attempt.error_code == "access_denied"
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert status.status_code == 286
    assert "You did not allow access" in status.content.decode()
    event = json.loads(status["HX-Trigger"])["portal-events"]["events"][0]
    assert event["event"] == "did-fail-authorization-verification"
    assert event["data"]["authorizationId"] is None
    assert event["data"]["reason"] == "access_denied"
    outbox = Event.objects.get(tenant=world.tenant, type="credential.authorization_failed")
    assert outbox.data["reason"] == "access_denied"
    assert outbox.data["user_id"] == "user-42"
    assert not Event.objects.filter(type="credential.created").exists()


def test_denying_consent_on_a_reconnect_names_the_account_that_stayed_as_it_was(client, world, hx):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url))
    credential = credentials(world).get()
    before = Credential.objects.values().get(pk=credential.pk)
    attempt, url = start(client, world, hx, credential=str(credential.pk))

    callback(client, provider_answer(url, base_url=world.base_url, allow=False))

    assert Credential.objects.values().get(pk=credential.pk) == before
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    assert status.status_code == 286
    event = json.loads(status["HX-Trigger"])["portal-events"]["events"][0]
    assert event["event"] == "did-fail-authorization-verification"
    assert event["data"]["authorizationId"] == str(credential.pk)
    assert event["data"]["reason"] == "access_denied"
    failed = Event.objects.get(tenant=world.tenant, type="credential.authorization_failed")
    assert failed.data["reconnect_credential_id"] == str(credential.pk)
    assert Event.objects.filter(type="credential.created").count() == 1


def test_a_code_the_provider_rejects_says_so_and_creates_nothing(client, world, hx):
    attempt, url = start(client, world, hx)
    answer = provider_answer(url, base_url=world.base_url)
    path, query = path_and_query(answer)
    query["code"] = "not-the-code-the-provider-issued"

    response = client.get(path, query)

    body = response.content.decode()
    assert "refused to complete the sign-in" in body
    assert "invalid_grant" in body
    assert not credentials(world).exists()
    attempt.refresh_from_db()
    assert attempt.outcome == OAuthAttempt.Outcome.FAILED


def test_a_provider_that_answers_503_is_reported_as_down_and_creates_nothing(
    client, world, hx, httpserver
):
    httpserver.expect_request("/token", method="POST").respond_with_data("maintenance", status=503)
    app = world.apps[SANDBOX_OAUTH]
    app.token_url = httpserver.url_for("/token")
    app.save()
    attempt, url = start(client, world, hx)

    response = callback(client, provider_answer(url, base_url=world.base_url))

    body = response.content.decode()
    assert "is not answering right now" in body
    assert "Nothing was connected" in body
    assert not credentials(world).exists()
    attempt.refresh_from_db()
    assert attempt.error_code == "provider_unavailable"


def test_a_provider_that_cannot_be_reached_is_reported_as_down_and_creates_nothing(
    client, world, hx
):
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = world.apps[SANDBOX_OAUTH]
    app.token_url = f"http://127.0.0.1:{port}/token"
    app.save()
    _, url = start(client, world, hx)

    response = callback(client, provider_answer(url, base_url=world.base_url))

    assert "is not answering right now" in response.content.decode()
    assert not credentials(world).exists()


def test_a_closed_popup_cancels_the_attempt_and_a_late_answer_creates_nothing(client, world, hx):
    attempt, url = start(client, world, hx)
    answer = provider_answer(url, base_url=world.base_url)

    closed = client.post(world.modal_url(f"oauth/{attempt.pk}/cancel/"), {"reason": "closed"}, **hx)

    assert closed.status_code == 286
    assert "You closed the Sandbox (OAuth2) sign-in window before finishing" in (
        closed.content.decode()
    )
    late = callback(client, answer)
    assert "was cancelled in the connect window" in late.content.decode()
    assert not credentials(world).exists()


def test_a_state_works_only_within_its_own_session(client, world, hx):
    attempt, _ = start(client, world, hx)
    _, other_token = world.new_session()
    other = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": other_token}

    seen = client.get(f"/connect/{other_token}/oauth/{attempt.pk}/", **other)
    cancelled = client.post(f"/connect/{other_token}/oauth/{attempt.pk}/cancel/", **other)

    assert seen.status_code == 286 and seen.content == b""
    assert cancelled.status_code == 404
    attempt.refresh_from_db()
    assert attempt.outcome == OAuthAttempt.Outcome.PENDING


def test_signing_in_again_as_the_same_account_updates_it_and_reports_already_exists(
    client, world, hx
):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url))
    first = credentials(world).get()
    first_expiry = first.expires_at

    attempt, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url))

    assert credentials(world).count() == 1
    first.refresh_from_db()
    assert first.expires_at >= first_expiry
    attempt.refresh_from_db()
    assert attempt.already_existed is True
    assert attempt.credential_id == first.pk
    status = client.get(world.modal_url(f"oauth/{attempt.pk}/"), **hx)
    event = json.loads(status["HX-Trigger"])["portal-events"]["events"][0]
    assert event["data"]["alreadyExists"] is True
    assert event["data"]["authorizationId"] == str(first.pk)


def test_another_account_of_the_same_app_is_a_second_credential(client, world, hx):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url, email="alice@sandbox.test"))
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url, email="bob@sandbox.test"))

    assert sorted(credentials(world).values_list("identity", flat=True)) == [
        "alice@sandbox.test",
        "bob@sandbox.test",
    ]


def test_reconnect_replaces_the_tokens_in_place_and_keeps_the_id(client, world, hx):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url))
    credential = credentials(world).get()
    old_cipher = bytes(credential.secret_ciphertext)

    attempt, url = start(client, world, hx, credential=str(credential.pk))
    response = callback(client, provider_answer(url, base_url=world.base_url))

    assert "Reconnected" in response.content.decode()
    credential.refresh_from_db()
    assert credentials(world).count() == 1
    assert bytes(credential.secret_ciphertext) != old_cipher
    assert credential.status == Credential.Status.ACTIVE
    attempt.refresh_from_db()
    assert attempt.credential_id == credential.pk


def test_reconnect_as_a_different_identity_is_refused_and_changes_nothing(client, world, hx):
    _, url = start(client, world, hx)
    callback(client, provider_answer(url, base_url=world.base_url, email="alice@sandbox.test"))
    credential = credentials(world).get()
    old_cipher = bytes(credential.secret_ciphertext)

    attempt, url = start(client, world, hx, credential=str(credential.pk))
    response = callback(
        client, provider_answer(url, base_url=world.base_url, email="bob@sandbox.test")
    )

    body = response.content.decode()
    assert "as bob@sandbox.test, but this account is alice@sandbox.test" in body
    credential.refresh_from_db()
    assert bytes(credential.secret_ciphertext) == old_cipher
    assert credentials(world).count() == 1
    attempt.refresh_from_db()
    assert attempt.error_code == "identity_mismatch"


def test_the_full_page_redirect_comes_back_to_the_modal_with_its_parameters(client, world):
    world.session.redirect_uri = "https://app.acme.test/integrations"
    world.session.save(update_fields=["redirect_uri"])
    start_url = world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/")
    response = client.get(
        start_url,
        {"mode": "redirect", "embed_origin": "https://app.acme.test", "hide_prompt": "1"},
    )
    assert response.status_code == 302
    assert response["Location"].startswith(world.base_url + "/sandbox/o/authorize/?")

    back = callback(client, provider_answer(response["Location"], base_url=world.base_url))

    assert back.status_code == 302
    path, query = path_and_query(back["Location"])
    assert path == world.modal_url()
    assert query["embed_origin"] == "https://app.acme.test"
    assert query["hide_prompt"] == "1"
    assert query["app"] == SANDBOX_OAUTH
    page = client.get(back["Location"])
    body = page.content.decode()
    assert page.status_code == 200
    assert "Connected your Sandbox (OAuth2) account alice@sandbox.test" in body
    assert 'id="portal-initial-events"' in body
    assert "did-add-authorization" in body
    assert 'data-embed-origin="https://app.acme.test"' in body
    assert 'href="https://app.acme.test/integrations"' in body  # the way back to the product


def test_an_app_without_an_oauth_client_is_not_offered_and_cannot_be_started(client, world, hx):
    from integrations.models import TenantOAuthClient

    TenantOAuthClient.objects.filter(tenant=world.tenant).delete()

    response = client.post(world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), **hx)

    assert response.status_code == 404
    assert "is not one of the apps you can connect here" in response.content.decode()
    assert "Sandbox (OAuth2)" not in client.get(world.modal_url()).content.decode()
    assert not OAuthAttempt.objects.exists()


def test_reconnecting_an_account_that_was_removed_meanwhile_says_so(client, world, hx):
    from tests import factories

    credential = factories.make_credential(end_user=world.end_user, app=world.apps[SANDBOX_OAUTH])
    credential_id = credential.pk
    credential.delete()

    response = client.post(
        world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), {"credential": str(credential_id)}, **hx
    )

    assert response.status_code == 422
    assert "That account is no longer connected" in response.content.decode()
    assert not OAuthAttempt.objects.exists()


def test_embedding_parameters_on_the_callback_do_not_break_it(client, world, hx):
    # The callback is not one of the session's views: it must not check an embedding origin
    # against a session it has not loaded (that was a 500).
    _, url = start(client, world, hx)
    path, query = path_and_query(provider_answer(url, base_url=world.base_url))

    response = client.get(path, {**query, "embed_origin": "https://x.test", "locale": "fr"})

    assert response.status_code == 200
    assert credentials(world).get().status == Credential.Status.ACTIVE
