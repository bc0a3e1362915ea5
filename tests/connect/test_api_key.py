"""API-key and basic connections from the modal, verified by the sandbox provider."""

from __future__ import annotations

import html
import json
import re
import time

import pytest
from django.utils import timezone
from werkzeug import Response

from integrations.models import Credential, Event
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_BASIC
from sandbox.services import sandbox_api_key_create, sandbox_api_key_revoke
from tests.sandbox.helpers import form_fields

pytestmark = pytest.mark.django_db(transaction=True)


def connect(client, world, hx, slug=SANDBOX_API_KEY, **fields):
    return client.post(world.modal_url(f"apps/{slug}/accounts/"), fields, **hx)


def events_of(response) -> list[dict]:
    return json.loads(response["HX-Trigger"])["portal-events"]["events"]


def credential_events(world):
    return Event.objects.filter(tenant=world.tenant, type__startswith="credential.").order_by(
        "created_at"
    )


def field_error(body: str, field_id: str) -> str:
    """The text of the errors Django shows under one field (``<ul id="<field>_error">``)."""
    found = re.search(rf'<ul[^>]*id="{re.escape(field_id)}_error"[^>]*>(.*?)</ul>', body, re.S)
    assert found, f"no errors shown under {field_id}"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


# How long the slow provider takes; the outbound read timeout is set to a third of it.
SLOW_SECONDS = 1.5


def point_the_api_key_app_at_a_failing_provider(world, httpserver, settings, behaviour: str):
    """The API-key app's verification goes to a provider that answers 503, or too late."""
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = SLOW_SECONDS / 3
    if behaviour == "slow":

        def too_late(request):
            time.sleep(SLOW_SECONDS)
            return Response('{"email": "alice@sandbox.test"}', content_type="application/json")

        httpserver.expect_request("/down/me").respond_with_handler(too_late)
    else:
        httpserver.expect_request("/down/me").respond_with_data("maintenance", status=503)
    app = world.apps[SANDBOX_API_KEY]
    app.api_base_url = httpserver.url_for("/down")
    app.save(update_fields=["api_base_url"])


def test_a_key_that_verifies_is_connected_and_reported_to_the_page(client, world, hx):
    response = connect(client, world, hx, api_key=world.api_key(), portal_label="Work")

    assert response.status_code == 200
    assert not response.cookies  # the modal never needs a cookie, not even for a write
    credential = Credential.objects.get(end_user=world.end_user)
    assert credential.status == Credential.Status.ACTIVE
    assert credential.identity == "alice@sandbox.test"
    assert credential.label == "Work"
    body = response.content.decode()
    assert "Connected Work to Sandbox (API key)." in body
    assert 'class="badge badge--active"' in body
    assert events_of(response) == [
        {
            "event": "did-add-authorization",
            "data": {
                "identity": "alice@sandbox.test",
                "authorizationId": str(credential.pk),
                "flowId": None,
                "alreadyExists": False,
                "app": SANDBOX_API_KEY,
            },
        }
    ]
    assert Event.objects.filter(type="credential.created").count() == 1
    assert Event.objects.filter(type="credential.verified").count() == 1


def test_a_key_the_provider_refuses_keeps_the_form_with_its_reason_next_to_the_key(
    client, world, hx
):
    response = connect(
        client, world, hx, api_key="sbx_" + "0" * 24, portal_label="Work", flow=world.alerts.pk
    )

    assert response.status_code == 422
    assert not Credential.objects.exists()
    assert not credential_events(world)
    body = response.content.decode()
    assert "The API key is unknown." in field_error(body, f"connect-{SANDBOX_API_KEY}-api_key")
    assert "Nothing was connected" in field_error(body, f"connect-{SANDBOX_API_KEY}-api_key")
    kept = form_fields(body, action=world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"))
    assert kept["portal_label"] == "Work"
    assert kept["api_key"] == ""  # a secret is never echoed back
    assert events_of(response) == [
        {
            "event": "did-fail-authorization-verification",
            "data": {
                "identity": "",
                "authorizationId": None,
                "flowId": str(world.alerts.pk),
                "alreadyExists": False,
                "app": SANDBOX_API_KEY,
                "reason": "Sandbox (API key) refused the credential: The API key is unknown.",
            },
        }
    ]

    fixed = connect(client, world, hx, api_key=world.api_key(), portal_label="Work")

    assert fixed.status_code == 200
    credential = Credential.objects.get(end_user=world.end_user)
    assert (credential.status, credential.label) == (Credential.Status.ACTIVE, "Work")
    assert events_of(fixed)[0]["event"] == "did-add-authorization"
    assert [event.type for event in credential_events(world)] == [
        "credential.created",
        "credential.verified",
    ]


@pytest.mark.parametrize("behaviour", ["503", "slow"])
def test_a_provider_that_is_down_or_slow_keeps_the_form_and_says_to_try_again_shortly(
    client, world, hx, httpserver, settings, behaviour
):
    point_the_api_key_app_at_a_failing_provider(world, httpserver, settings, behaviour)

    response = connect(client, world, hx, api_key=world.api_key(), portal_label="Work")

    assert response.status_code == 422
    assert not Credential.objects.exists()
    assert not credential_events(world)
    body = response.content.decode()
    assert "so nothing was connected; try again in a minute or two" in body
    kept = form_fields(body, action=world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"))
    assert kept["portal_label"] == "Work"
    assert kept["api_key"] == ""
    event = events_of(response)[0]
    assert event["event"] == "did-fail-authorization-verification"
    assert event["data"]["authorizationId"] is None
    assert event["data"]["alreadyExists"] is False


def test_an_account_the_provider_later_refuses_shows_its_reason_and_can_be_checked_again_or_removed(
    client, world, hx
):
    sandbox_key, key = sandbox_api_key_create(
        account=world.accounts["alice@sandbox.test"], name="modal test"
    )
    connect(client, world, hx, api_key=key)
    credential = Credential.objects.get(end_user=world.end_user)
    sandbox_api_key_revoke(api_key=sandbox_key)

    checked = client.post(world.modal_url(f"accounts/{credential.pk}/retry/"), **hx)

    assert checked.status_code == 200
    assert "The API key has been revoked." in checked.content.decode()
    credential.refresh_from_db()
    assert credential.status == Credential.Status.INVALID
    event = events_of(checked)[0]
    assert event["event"] == "did-fail-authorization-verification"
    assert event["data"]["authorizationId"] == str(credential.pk)
    assert "The API key has been revoked." in event["data"]["reason"]

    removed = client.post(world.modal_url(f"accounts/{credential.pk}/disconnect/"), **hx)

    assert removed.status_code == 200
    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert events_of(removed) == [
        {
            "event": "did-remove-authorization",
            "data": {
                "authorizationId": str(credential.pk),
                "app": SANDBOX_API_KEY,
                "identity": "alice@sandbox.test",
            },
        }
    ]


@pytest.mark.parametrize("behaviour", ["refused", "503"])
def test_a_new_key_that_fails_at_the_provider_leaves_the_account_as_it_was_and_names_it(
    client, world, hx, httpserver, settings, behaviour
):
    connect(client, world, hx, api_key=world.api_key(), portal_label="Work")
    credential = Credential.objects.get(end_user=world.end_user)
    before = Credential.objects.values().get(pk=credential.pk)
    events_before = credential_events(world).count()
    new_key = "sbx_" + "0" * 24
    if behaviour == "503":
        point_the_api_key_app_at_a_failing_provider(world, httpserver, settings, behaviour)
        new_key = world.api_key()

    response = client.post(
        world.modal_url(f"accounts/{credential.pk}/reconnect/"), {"api_key": new_key}, **hx
    )

    assert response.status_code == 422
    assert Credential.objects.values().get(pk=credential.pk) == before
    assert credential_events(world).count() == events_before
    body = response.content.decode()
    assert "your account was not changed" in body.lower()
    event = events_of(response)[0]
    assert event["event"] == "did-fail-authorization-verification"
    assert event["data"]["authorizationId"] == str(credential.pk)
    assert event["data"]["identity"] == "alice@sandbox.test"


def test_fields_are_validated_on_the_server_with_errors_next_to_each_field(client, world, hx):
    response = connect(client, world, hx, api_key="not-a-sandbox-key")

    assert response.status_code == 422
    body = response.content.decode()
    assert "API key is not in the expected format." in body
    assert 'aria-invalid="true"' in body
    assert 'id="connect-sandbox-apikey-api_key_error"' in body
    assert not Credential.objects.exists()


def test_a_missing_required_field_is_named(client, world, hx):
    response = connect(client, world, hx, SANDBOX_BASIC, email="", api_key="")

    body = response.content.decode()
    assert response.status_code == 422
    assert "Email is required." in body
    assert "API key is required." in body
    assert not Credential.objects.exists()


def test_a_secret_is_never_echoed_back_in_the_form(client, world, hx):
    secret = "sbx_" + "s3cr3t" * 5
    response = connect(client, world, hx, SANDBOX_BASIC, email="", api_key=secret)

    assert response.status_code == 422
    assert secret not in response.content.decode()


def test_basic_auth_connects_with_email_and_key(client, world, hx):
    response = connect(
        client, world, hx, SANDBOX_BASIC, email="alice@sandbox.test", api_key=world.api_key()
    )

    assert response.status_code == 200
    credential = Credential.objects.get(end_user=world.end_user)
    assert credential.status == Credential.Status.ACTIVE


def test_a_second_account_is_a_new_credential_and_the_same_one_again_updates_the_first(
    client, world, hx
):
    connect(client, world, hx, api_key=world.api_key("alice@sandbox.test"))
    connect(client, world, hx, api_key=world.api_key("bob@sandbox.test"))
    assert Credential.objects.filter(end_user=world.end_user).count() == 2
    alice = Credential.objects.get(identity="alice@sandbox.test")
    old_cipher = bytes(alice.secret_ciphertext)

    again = connect(client, world, hx, api_key=world.api_key("alice@sandbox.test"))

    assert Credential.objects.filter(end_user=world.end_user).count() == 2
    alice.refresh_from_db()
    assert bytes(alice.secret_ciphertext) != old_cipher
    assert "was already connected to Sandbox (API key); it is now up to date" in (
        again.content.decode()
    )
    event = events_of(again)[0]
    assert event["data"]["alreadyExists"] is True
    assert event["data"]["authorizationId"] == str(alice.pk)


def test_a_verifying_account_polls_until_the_provider_answers_then_stops(client, world, hx):
    from tests import factories

    credential = factories.make_credential(
        end_user=world.end_user,
        app=world.apps[SANDBOX_API_KEY],
        status=Credential.Status.PENDING,
        secret={"api_key": world.api_key()},
    )
    status_url = world.modal_url(f"accounts/{credential.pk}/status/")
    page = client.get(world.modal_url(f"apps/{SANDBOX_API_KEY}/"), **hx).content.decode()
    assert f'hx-get="{status_url}?' in page
    assert 'hx-trigger="every 1s"' in page

    assert "Checking the account with Sandbox (API key)" in page
    still = client.get(status_url, **hx)
    assert still.status_code == 204  # nothing changed: no swap, polling goes on
    assert "HX-Trigger" not in still

    from integrations.services.verification import credential_verify

    credential_verify(credential_id=credential.pk)
    done = client.get(status_url, **hx)

    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()
    assert events_of(done)[0]["event"] == "did-add-authorization"


def test_polling_gives_up_politely_when_the_provider_takes_too_long(client, world, hx):
    from tests import factories

    credential = factories.make_credential(
        end_user=world.end_user, app=world.apps[SANDBOX_API_KEY], status="pending"
    )
    Credential.objects.filter(pk=credential.pk).update(
        updated_at=timezone.now() - timezone.timedelta(minutes=5)
    )

    response = client.get(world.modal_url(f"accounts/{credential.pk}/status/"), **hx)

    assert response.status_code == 286
    assert "We keep checking in the background" in response.content.decode()


def test_without_allow_multiple_a_second_account_is_refused(client, world, hx):
    _, token = world.new_session(allow_multiple=False)
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": token}
    client.post(
        f"/connect/{token}/apps/{SANDBOX_API_KEY}/accounts/",
        {"api_key": world.api_key("alice@sandbox.test")},
        **headers,
    )
    page = client.get(f"/connect/{token}/apps/{SANDBOX_API_KEY}/", **headers).content.decode()
    assert "Add another account" not in page

    response = client.post(
        f"/connect/{token}/apps/{SANDBOX_API_KEY}/accounts/",
        {"api_key": world.api_key("bob@sandbox.test")},
        **headers,
    )

    assert response.status_code == 422
    assert "Your Sandbox (API key) account" in response.content.decode()
    assert Credential.objects.filter(end_user=world.end_user).count() == 1


def test_the_flow_the_user_connected_from_is_reported(client, world, hx):
    response = client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": world.api_key(), "flow": str(world.alerts.pk)},
        **hx,
    )

    assert events_of(response)[0]["data"]["flowId"] == str(world.alerts.pk)
