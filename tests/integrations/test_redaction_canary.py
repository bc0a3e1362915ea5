"""A provider that echoes secrets back never gets them stored, logged, shown or sent.

A local provider (pytest-httpserver) quotes whatever it was sent in every refusal: the API key
("Invalid API key provided: sk_live_CANARY…"), the OAuth2 access and refresh tokens, the client
secret; a webhook receiver quotes its signing secret and the key. After a refused connection
(API and modal), a refused re-verification, a failed refresh, a failed revocation, a proxied
error and a webhook attempt, no piece of any canary is in the database (dumpdata and every
text column), the logs, the admin's lists and change pages, the API's bodies or the outbox.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from werkzeug import Request, Response

from accounts.services.audit import Actor
from core.redact import REDACTED, redact, redact_bytes
from integrations.models import Credential, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.services.connect_sessions import connect_session_create
from integrations.services.oauth_clients import oauth_client_set
from integrations.services.refresh import RefreshKind, credential_refresh
from integrations.services.webhook_delivery import webhook_delivery_attempt
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from tests import factories
from tests.api.conftest import client_for, error_of

pytestmark = pytest.mark.django_db

API_KEY = "sk_live_CANARY4fQ9zL2xW7mB3kT8vR1nY6pD"
NEW_KEY = "sk_live_CANARY8hJ2cV5bN7mX1zQ4wE9rT3y"
ACCESS_TOKEN = "at-CANARY-7Gd2Kp9Lq4Zx1Vb8Nm3Wc6Ry"
REFRESH_TOKEN = "rt-CANARY-2Hs8Jd4Kf9Lg1Zm6Xn3Cb7Vq"
EXPIRING_REFRESH_TOKEN = "rt-CANARY-5Qw1Er7Ty3Ui9Op2As6Df4G"
CLIENT_SECRET = "cs-CANARY-9Pl3Ok7Ij2Uh5Yg8Tf1Rd4Es"
PIECE = 10  # any run this long of a canary counts as a leak


def canary_pieces(values: list[str]) -> set[str]:
    """Runs of PIECE characters of each value's random part (its prefix is no secret)."""
    tails = [value.split("CANARY", 1)[-1].split("whsec_", 1)[-1] for value in values]
    return {tail[i : i + PIECE] for tail in tails for i in range(len(tail) - PIECE + 1)}


def echo(request: Request) -> str:
    """Everything a request carried that may be secret, quoted back."""
    quoted = [
        request.headers.get("X-API-Key", ""),
        request.headers.get("Authorization", ""),
        request.get_data(as_text=True),
        *(
            value
            for values in parse_qs(request.get_data(as_text=True)).values()
            for value in values
        ),
    ]
    return " | ".join(part for part in quoted if part)


def refuse_key(request: Request) -> Response:
    return Response(
        json.dumps({"error": {"message": f"Invalid API key provided: {echo(request)}"}}),
        status=401,
        content_type="application/json",
    )


def refuse_token(request: Request) -> Response:
    body = request.get_data(as_text=True)
    error = "invalid_grant" if EXPIRING_REFRESH_TOKEN in body else "invalid_request"
    return Response(
        json.dumps({"error": error, "error_description": f"Cannot use {echo(request)}."}),
        status=400,
        content_type="application/json",
    )


def refuse_revocation(request: Request) -> Response:
    return Response(f"unknown token {echo(request)}", status=400, content_type="text/plain")


@pytest.fixture
def provider(httpserver):
    httpserver.expect_request("/keys/me").respond_with_handler(refuse_key)
    httpserver.expect_request("/keys/things").respond_with_handler(refuse_key)
    httpserver.expect_request("/oauth/api/me").respond_with_handler(refuse_key)
    httpserver.expect_request("/oauth/token").respond_with_handler(refuse_token)
    httpserver.expect_request("/oauth/revoke").respond_with_handler(refuse_revocation)
    return httpserver


@pytest.fixture
def world(tenant, end_user, provider):
    key_app = factories.make_api_key_app(
        slug="echo-keys", name="Echo Keys", api_base_url=provider.url_for("/keys")
    )
    oauth_app = factories.make_oauth_app(
        slug="echo-oauth",
        name="Echo OAuth",
        api_base_url=provider.url_for("/oauth/api"),
        token_url=provider.url_for("/oauth/token"),
        revocation_url=provider.url_for("/oauth/revoke"),
    )
    oauth_client_set(
        tenant=tenant, app=oauth_app, client_id="echo-client", client_secret=CLIENT_SECRET
    )
    flow = factories.make_flow(tenant=tenant, apps=[key_app, oauth_app])
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    return {"key_app": key_app, "oauth_app": oauth_app, "deployment": deployment}


def test_redact_removes_the_values_their_pieces_and_token_looking_strings():
    assert redact(f"Invalid API key provided: {API_KEY}", [API_KEY]) == (
        f"Invalid API key provided: {REDACTED}"
    )
    # A provider that cuts the key short, or shows only its end, still shows a piece of it.
    assert redact(f"key {API_KEY[:14]}*** refused", [API_KEY]) == f"key {REDACTED}*** refused"
    assert redact(f"…{API_KEY[-9:]} refused", [API_KEY]) == f"…{REDACTED} refused"
    assert redact("password hunter22 is wrong", ["hunter22"]) == f"password {REDACTED} is wrong"
    # What looks like a token goes whatever its origin; plain words stay.
    assert redact("Authorization: Bearer abc123def456ghi789") == (
        f"Authorization: Bearer {REDACTED}"
    )
    assert redact('{"refresh_token": "zz-9876543", "ok": true}') == (
        f'{{"refresh_token": "{REDACTED}", "ok": true}}'
    )
    assert redact("POST token=abcd1234&scope=x") == f"POST token={REDACTED}&scope=x"
    assert redact("signed with whsec_c2VjcmV0c2VjcmV0c2Vj") == f"signed with {REDACTED}"
    assert redact("The token verification failed; Bearer authentication required.") == (
        "The token verification failed; Bearer authentication required."
    )
    assert redact_bytes(b"\xff\xfe" + API_KEY.encode(), [API_KEY]) == b"\xff\xfe" + (
        REDACTED.encode()
    )


def test_no_echoed_secret_reaches_any_sink(client, tenant, end_user, world, caplog, httpserver):
    caplog.set_level(logging.DEBUG)
    api = client_for(tenant)
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=httpserver.url_for("/hook"))
    signing_secret = webhook_endpoint_secret_rotate(endpoint=endpoint)
    httpserver.expect_request("/hook").respond_with_data(
        f"refused: we expected {signing_secret}, and here is a key: {API_KEY}", status=400
    )
    canaries = [API_KEY, NEW_KEY, ACCESS_TOKEN, REFRESH_TOKEN, EXPIRING_REFRESH_TOKEN]
    canaries += [CLIENT_SECRET, signing_secret]
    pieces = canary_pieces(canaries)
    shown: list[str] = []  # every body a tenant, a user or staff were shown

    def assert_clean(text: str, where: str) -> None:
        found = sorted(piece for piece in pieces if piece in text)
        assert not found, f"{where} carries {found[:3]}: …{text[:2000]}"

    key_app, oauth_app = world["key_app"], world["oauth_app"]

    # 1. A new key the provider refuses, through the API: a 422 with the redacted reason.
    refused = api.post(
        "/api/v1/credentials",
        {"user": end_user.external_id, "app": key_app.slug, "fields": {"api_key": NEW_KEY}},
    )
    assert refused.status_code == 422, refused.content
    assert error_of(refused)["code"] == "credential_rejected"
    assert f"Invalid API key provided: {REDACTED}" in error_of(refused)["message"]
    shown.append(refused.content.decode())

    # 2. The same through the modal's form: the reason next to the field, and the SDK event.
    issued = connect_session_create(
        tenant=tenant, end_user=end_user, deployment=world["deployment"]
    )
    modal = client.post(
        f"/connect/{issued.token}/apps/{key_app.slug}/accounts/",
        {"api_key": NEW_KEY},
        HTTP_HX_REQUEST="true",
        HTTP_X_PORTAL_SESSION=issued.token,
    )
    assert modal.status_code == 422, modal.content
    assert "Invalid API key provided: [redacted]" in modal.content.decode()
    shown += [modal.content.decode(), modal.get("HX-Trigger", "")]

    # 3. The proxy: the upstream's refusal quotes the key; the caller gets it redacted.
    keyed = factories.make_credential(end_user=end_user, app=key_app, secret={"api_key": API_KEY})
    proxied = api.get(
        f"/api/v1/proxy/{key_app.slug}/things", HTTP_X_PORTAL_CREDENTIAL=str(keyed.pk)
    )
    assert proxied.status_code == 401
    assert REDACTED in proxied.content.decode()
    shown.append(proxied.content.decode())

    # 4. The same key re-verified and refused: invalid, with the redacted reason stored.
    verified = api.post(f"/api/v1/credentials/{keyed.pk}/verify")
    assert verified.status_code == 200, verified.content
    assert verified.json()["result"] == "rejected"
    keyed.refresh_from_db()
    assert keyed.status == Credential.Status.INVALID
    assert f"Invalid API key provided: {REDACTED}" in keyed.last_verification_error
    shown.append(verified.content.decode())

    # 5. Refresh failures: a refused request (kept as it is), then an invalid grant (expired).
    expired_at = timezone.now() - timedelta(minutes=1)
    oauth_secret = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN}
    oauth = factories.make_credential(
        end_user=end_user, app=oauth_app, secret=oauth_secret, expires_at=expired_at
    )
    outcome = credential_refresh(credential_id=oauth.pk, force=True, actor=Actor.system())
    assert outcome.kind == RefreshKind.FAILED
    assert REDACTED in outcome.reason
    shown.append(outcome.reason)
    through_api = api.post(f"/api/v1/credentials/{oauth.pk}/verify")
    assert through_api.status_code == 200, through_api.content
    shown.append(through_api.content.decode())
    expiring = factories.make_credential(
        end_user=end_user,
        app=oauth_app,
        secret={"access_token": ACCESS_TOKEN, "refresh_token": EXPIRING_REFRESH_TOKEN},
        expires_at=expired_at,
        identity="other@example.com",
    )
    assert credential_refresh(credential_id=expiring.pk, force=True).kind == RefreshKind.EXPIRED

    # 6. Revocation refused at the provider while disconnecting.
    assert api.delete(f"/api/v1/credentials/{oauth.pk}").status_code == 204
    revoke_requests = [r for r, _ in httpserver.log if r.path == "/oauth/revoke"]
    assert revoke_requests, "the provider was asked to revoke"

    # 7. Every webhook delivered once, to a receiver that quotes its secret and the key.
    for delivery in WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING):
        webhook_delivery_attempt(delivery_id=delivery.pk)
    attempts = list(WebhookAttempt.objects.all())
    assert attempts and all(attempt.status_code == 400 for attempt in attempts)
    assert all(REDACTED in attempt.response_body for attempt in attempts)

    # The provider did quote the canaries (the test would prove nothing otherwise).
    quoted = " ".join(response.get_data(as_text=True) for _, response in httpserver.log)
    assert API_KEY in quoted and NEW_KEY in quoted and REFRESH_TOKEN in quoted
    assert CLIENT_SECRET in quoted and signing_secret in quoted

    # Sinks: what was shown, the API's reads, the outbox, the logs, the database, the admin.
    for index, text in enumerate(shown):
        assert_clean(text, f"answer #{index + 1}")
    for path in (
        "/api/v1/credentials",
        f"/api/v1/credentials/{keyed.pk}",
        f"/api/v1/credentials/{expiring.pk}",
        f"/api/v1/users/{end_user.external_id}",
    ):
        answer = api.get(path)
        assert answer.status_code == 200, (path, answer.content)
        assert_clean(answer.content.decode(), f"GET {path}")
    payloads = [event.payload() for event in Event.objects.all()]
    assert {"credential.verification_failed", "credential.expired"} <= {
        payload["type"] for payload in payloads
    }
    assert_clean(json.dumps(payloads), "the outbox")
    assert_clean(caplog.text, "the logs")

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert_clean(dump.getvalue(), "dumpdata")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            name = connection.ops.quote_name(table)
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT t::text FROM {name} AS t")  # every column as text
            else:
                cursor.execute(f"SELECT * FROM {name}")
            assert_clean(" ".join(str(row) for row in cursor.fetchall()), f"table {table}")

    staff = get_user_model().objects.create_superuser(
        username="root@example.com", email="root@example.com", password="pw"
    )
    client.force_login(staff)
    pages = 0
    for model in admin.site._registry:
        meta = model._meta
        try:
            changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        listing = client.get(changelist)
        assert listing.status_code < 500, changelist
        assert_clean(listing.content.decode(), changelist)
        for pk in model.objects.values_list("pk", flat=True)[:20]:
            page = client.get(
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])
            )
            assert page.status_code < 500, (changelist, pk)
            assert_clean(page.content.decode(), f"{changelist}{pk}/change/")
            pages += 1
    assert pages >= 10
