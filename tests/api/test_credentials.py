"""The credentials API against a real local provider (pytest-httpserver): create (checked at the
provider before anything is stored), verify, list, read, delete; never a secret in an answer."""

from __future__ import annotations

import socket
import time

import pytest
from werkzeug import Response

from accounts.models import AuditLogEntry
from integrations.models import Credential, Event
from integrations.services.oauth_clients import oauth_client_set
from tests import factories
from tests.api.conftest import error_of, key_app_on

GOOD_KEY = "key_goodgood1234567890"
BAD_KEY = "key_revoked000000000"
# How long the slow provider takes; the outbound read timeout is set to a third of it.
SLOW_SECONDS = 1.5


@pytest.fixture
def provider(httpserver):
    """A provider whose /me accepts GOOD_KEY as Ada's account and refuses anything else."""
    httpserver.expect_request("/api/me", headers={"X-API-Key": GOOD_KEY}).respond_with_json(
        {"email": "ada@provider.test"}
    )
    httpserver.expect_request("/api/me").respond_with_json({"message": "Invalid API key"}, 401)
    return httpserver


@pytest.fixture
def key_app(provider):
    return key_app_on(provider.url_for("/api"), slug="keyed")


def _create(api, headers=None, **overrides):
    body = {"user": "user-1", "app": "keyed", "fields": {"api_key": GOOD_KEY}, "label": "Main"}
    body.update(overrides)
    return api.post("/api/v1/credentials", body, headers=headers or {})


@pytest.mark.django_db(transaction=True)
def test_creating_an_api_key_credential_verifies_it_and_answers_without_the_secret(
    api, end_user, key_app
):
    response = _create(api)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["identity"] == "ada@provider.test"
    assert body["user"] == "user-1"
    assert body["app"] == "keyed"
    assert body["label"] == "Main"
    assert body["secret_hint"] == "…7890"
    assert body["already_existed"] is False
    assert GOOD_KEY not in response.content.decode()
    credential = Credential.objects.get(pk=body["id"])
    assert credential.status == Credential.Status.ACTIVE
    fetched = api.get(f"/api/v1/credentials/{credential.pk}")
    assert fetched.status_code == 200
    assert fetched.json()["identity"] == "ada@provider.test"
    assert GOOD_KEY not in fetched.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_key_the_provider_refuses_is_a_422_with_its_reason_and_stores_nothing(
    api, tenant, end_user, key_app, provider
):
    response = _create(api, fields={"api_key": BAD_KEY})

    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "credential_rejected"
    assert "Invalid API key" in error["message"]
    assert "Nothing was stored" in error["message"]
    assert set(error["fields"]) == {"fields.api_key"}
    assert "Invalid API key" in error["fields"]["fields.api_key"]
    assert BAD_KEY not in response.content.decode()
    assert len(provider.log) == 1  # asked once, inline
    assert not Credential.objects.exists()
    assert not Event.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_connecting_the_same_provider_account_again_answers_with_the_existing_credential(
    api, tenant, end_user, key_app
):
    first = _create(api).json()

    again = _create(api, label="Again")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["already_existed"] is True
    assert again.json()["status"] == "active"
    assert Credential.objects.filter(end_user=end_user).count() == 1
    events = list(Event.objects.filter(tenant=tenant).order_by("created_at"))
    assert [event.type for event in events].count("credential.created") == 1
    assert events[-1].type == "credential.reconnected"
    assert events[-1].data["already_exists"] is True
    assert {event.data["credential_id"] for event in events} == {first["id"]}


@pytest.mark.django_db
def test_the_answer_comes_from_one_check_at_the_provider_with_nothing_pending(
    api, end_user, key_app, provider
):
    response = _create(api)

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert response.json()["last_verified_at"] is not None
    assert [request.path for request, _ in provider.log] == ["/api/me"]


@pytest.mark.django_db
def test_wait_for_verification_is_no_longer_an_input_and_is_refused_as_unknown(
    api, end_user, key_app, provider
):
    response = _create(api, wait_for_verification=False)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert "wait_for_verification" in error["fields"]
    assert not provider.log
    assert not Credential.objects.exists()


def _unavailable_provider(httpserver, behaviour: str) -> str:
    """A provider whose /me fails the way ``behaviour`` says; returns its base URL."""
    if behaviour == "unreachable":
        with socket.socket() as sock:  # a port nothing listens on once closed
            sock.bind(("127.0.0.1", 0))
            return f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    if behaviour == "slow":

        def too_late(request):
            time.sleep(SLOW_SECONDS)
            return Response('{"email": "ada@provider.test"}', content_type="application/json")

        httpserver.expect_request("/slow/me").respond_with_handler(too_late)
        return httpserver.url_for("/slow")
    httpserver.expect_request(f"/{behaviour}/me").respond_with_data("busy", status=int(behaviour))
    return httpserver.url_for(f"/{behaviour}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("behaviour", ["503", "500", "429", "slow", "unreachable"])
def test_a_provider_that_is_down_or_slow_is_a_503_with_retry_after_and_stores_nothing(
    api, tenant, end_user, httpserver, settings, behaviour
):
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = SLOW_SECONDS / 3
    key_app_on(_unavailable_provider(httpserver, behaviour), slug="keyed")

    response = _create(api)

    assert response.status_code == 503, response.content
    error = error_of(response)
    assert error["code"] == "provider_unavailable"
    assert "so nothing was stored" in error["message"]
    assert int(response["Retry-After"]) >= 1
    assert f"in {response['Retry-After']} seconds" in error["message"]
    assert GOOD_KEY not in response.content.decode()
    assert not Credential.objects.exists()
    assert not Event.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_the_providers_retry_after_is_passed_on_without_waiting_for_it_in_the_request(
    api, end_user, httpserver
):
    httpserver.expect_request("/busy/me").respond_with_data(
        "busy", status=503, headers={"Retry-After": "120"}
    )
    key_app_on(httpserver.url_for("/busy"), slug="keyed")

    started = time.monotonic()
    response = _create(api)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response["Retry-After"] == "120"
    assert elapsed < 10  # answered at once: no sleeping in the request, no retry loop
    assert len(httpserver.log) == 1
    assert not Credential.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_after_a_503_the_same_idempotency_key_works_once_the_provider_answers(
    api, end_user, httpserver
):
    httpserver.expect_oneshot_request("/api/me").respond_with_data("busy", status=503)
    httpserver.expect_request("/api/me").respond_with_json({"email": "ada@provider.test"})
    key_app_on(httpserver.url_for("/api"), slug="keyed")
    headers = {"Idempotency-Key": "connect-ada-once"}

    down = _create(api, headers=headers)
    back = _create(api, headers=headers)
    replayed = _create(api, headers=headers)

    assert down.status_code == 503
    assert back.status_code == 201, back.content
    assert back.json()["status"] == "active"
    assert replayed.status_code == 201
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == back.json()["id"]
    assert Credential.objects.filter(end_user=end_user).count() == 1


@pytest.mark.django_db
def test_fields_are_validated_like_the_modals_form_and_nothing_is_stored(api, end_user, key_app):
    response = _create(api, fields={"api_key": "nope", "extra": "x"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_fields"
    assert "It starts with key_." in error["fields"]["fields.api_key"]
    assert "fields.extra" in error["fields"]
    assert not Credential.objects.exists()


@pytest.mark.django_db
def test_a_missing_required_field_is_named(api, end_user, key_app):
    response = _create(api, fields={})

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"fields.api_key": "API key is required."}


@pytest.mark.django_db
def test_an_oauth2_app_is_a_422_that_says_to_use_the_modal(api, end_user):
    factories.make_oauth_app(slug="oauthy")

    response = _create(api, app="oauthy", fields={"access_token": "x"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "oauth2_app"
    assert "modal" in error["message"]
    assert not Credential.objects.exists()


@pytest.mark.django_db
def test_an_unknown_user_or_app_is_a_404(api, end_user, key_app):
    no_user = _create(api, user="ghost")
    no_app = _create(api, app="ghost-app")

    assert no_user.status_code == 404
    assert error_of(no_user)["code"] == "user_not_found"
    assert no_app.status_code == 404
    assert error_of(no_app)["code"] == "app_not_found"


@pytest.mark.django_db
def test_credentials_are_filtered_by_user_app_and_status_and_paged_by_cursor(api, tenant):
    ada = factories.make_end_user(tenant=tenant, external_id="ada")
    bob = factories.make_end_user(tenant=tenant, external_id="bob")
    crm = factories.make_api_key_app(slug="crm")
    mail = factories.make_api_key_app(slug="mail")
    ada_crm = [factories.make_credential(end_user=ada, app=crm) for _ in range(3)]
    invalid = factories.make_credential(end_user=ada, app=crm, status="invalid")
    factories.make_credential(end_user=ada, app=mail)
    factories.make_credential(end_user=bob, app=crm)

    first = api.get("/api/v1/credentials?user=ada&app=crm&status=active&limit=2").json()
    second = api.get(
        f"/api/v1/credentials?user=ada&app=crm&status=active&limit=2&cursor={first['next_cursor']}"
    ).json()
    invalid_only = api.get("/api/v1/credentials?status=invalid").json()
    everything = api.get("/api/v1/credentials").json()

    assert [c["id"] for c in first["data"] + second["data"]] == [str(c.pk) for c in ada_crm]
    assert second["next_cursor"] is None
    assert [c["id"] for c in invalid_only["data"]] == [str(invalid.pk)]
    assert len(everything["data"]) == 6


@pytest.mark.django_db
def test_listing_for_an_unknown_user_is_a_404_and_a_bad_status_a_422(api):
    unknown = api.get("/api/v1/credentials?user=ghost")
    bad_status = api.get("/api/v1/credentials?status=sleeping")

    assert unknown.status_code == 404
    assert bad_status.status_code == 422
    assert "status" in error_of(bad_status)["fields"]


@pytest.mark.django_db
def test_a_malformed_credential_id_is_a_422_and_an_unknown_one_a_404(api):
    malformed = api.get("/api/v1/credentials/not-a-uuid")
    unknown = api.get("/api/v1/credentials/6d7c1b8e-0f0a-4a8b-9c1d-2e3f4a5b6c7d")

    assert malformed.status_code == 422
    assert error_of(malformed)["code"] == "validation_error"
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "credential_not_found"


@pytest.mark.django_db(transaction=True)
def test_deleting_revokes_at_the_provider_removes_the_secret_and_emits_events(
    api, tenant, end_user, httpserver
):
    httpserver.expect_request("/revoke", method="POST").respond_with_data("")
    app = factories.make_oauth_app(slug="revocable", revocation_url=httpserver.url_for("/revoke"))
    oauth_client_set(tenant=tenant, app=app, client_id="client-1", client_secret="s3cret")
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"access_token": "at-1", "refresh_token": "rt-1"}
    )

    response = api.delete(f"/api/v1/credentials/{credential.pk}")

    assert response.status_code == 204
    assert not Credential.objects.filter(pk=credential.pk).exists()
    revoked_tokens = {request.form["token"] for request, _ in httpserver.log}
    assert revoked_tokens == {"at-1", "rt-1"}
    types = set(Event.objects.filter(tenant=tenant).values_list("type", flat=True))
    assert {"credential.revoked", "credential.deleted"} <= types
    revoke = AuditLogEntry.objects.get(tenant=tenant, action="credential.revoke")
    assert revoke.actor_type == "api_key"
    assert revoke.detail["revoked_at_provider"] is True
    assert api.get(f"/api/v1/credentials/{credential.pk}").status_code == 404


@pytest.mark.django_db
def test_verify_now_answers_with_the_result(api, end_user, key_app):
    good = factories.make_credential(
        end_user=end_user, app=key_app, secret={"api_key": GOOD_KEY}, status="pending"
    )
    bad = factories.make_credential(end_user=end_user, app=key_app, secret={"api_key": BAD_KEY})

    verified = api.post(f"/api/v1/credentials/{good.pk}/verify")
    rejected = api.post(f"/api/v1/credentials/{bad.pk}/verify")

    assert verified.status_code == 200
    assert verified.json()["result"] == "verified"
    assert verified.json()["credential"]["status"] == "active"
    assert verified.json()["credential"]["identity"] == "ada@provider.test"
    assert rejected.json()["result"] == "rejected"
    assert rejected.json()["credential"]["status"] == "invalid"
    assert "Invalid API key" in rejected.json()["reason"]


@pytest.mark.django_db
def test_verify_reports_an_unavailable_provider_without_changing_the_credential(
    api, end_user, httpserver
):
    httpserver.expect_request("/down/me").respond_with_data("busy", 503)
    app = key_app_on(httpserver.url_for("/down"), slug="flaky")
    credential = factories.make_credential(end_user=end_user, app=app)

    response = api.post(f"/api/v1/credentials/{credential.pk}/verify")

    assert response.status_code == 200
    assert response.json()["result"] == "unavailable"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE


@pytest.mark.django_db
def test_verifying_a_revoked_credential_is_a_409(api, end_user, key_app):
    credential = factories.make_credential(end_user=end_user, app=key_app, status="revoked")
    Credential.objects.filter(pk=credential.pk).update(secret_ciphertext=None)

    response = api.post(f"/api/v1/credentials/{credential.pk}/verify")

    assert response.status_code == 409
    assert error_of(response)["code"] == "credential_revoked"
