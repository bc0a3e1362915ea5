"""Outbound requests made for tenants never reach the portal's own network (SSRF).

Only loopback is used here: it stands for every non-public address the guard refuses.
"""

import pytest
import requests

from accounts.services.audit import Actor
from core.http import outbound_request
from integrations.models import Credential, Event, WebhookDelivery, WebhookEndpoint
from integrations.services.events import event_emit
from integrations.services.verification import credential_verify
from integrations.services.webhook_delivery import webhook_delivery_attempt
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from tests import factories
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def guarded(settings):
    settings.PORTAL_ALLOW_PRIVATE_NETWORK = False


def test_a_request_to_a_loopback_address_is_refused_before_anything_is_sent(guarded, httpserver):
    httpserver.expect_request("/secret").respond_with_data("internal")
    with pytest.raises(requests.ConnectionError, match="not a public address"):
        outbound_request("GET", httpserver.url_for("/secret"), timeout=5)
    assert httpserver.log == []


def test_with_private_networks_allowed_the_same_request_goes_through(settings, httpserver):
    settings.PORTAL_ALLOW_PRIVATE_NETWORK = True
    httpserver.expect_request("/secret").respond_with_data("internal")
    assert outbound_request("GET", httpserver.url_for("/secret"), timeout=5).text == "internal"


def test_a_tenants_custom_app_cannot_proxy_into_the_internal_network(
    guarded, httpserver, tenant, end_user
):
    app = factories.make_api_key_app(
        slug="internal", tenant=tenant, api_base_url=httpserver.url_for("/")
    )
    credential = factories.make_credential(end_user=end_user, app=app, secret={"api_key": "k" * 20})
    response = client_for(tenant).get(
        "/api/v1/proxy/internal/admin", headers={"X-Portal-Credential": str(credential.pk)}
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "destination_not_allowed"
    assert "not a public address" in error["message"]
    assert httpserver.log == []


def test_verification_against_an_internal_address_changes_nothing(
    guarded, httpserver, tenant, end_user
):
    app = factories.make_api_key_app(tenant=tenant, api_base_url=httpserver.url_for("/"))
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": "k" * 20}, status=Credential.Status.PENDING
    )
    outcome = credential_verify(credential_id=credential.pk, actor=Actor.system())
    assert outcome.kind == "unavailable"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.PENDING
    assert httpserver.log == []


def test_a_webhook_endpoint_on_an_internal_address_receives_nothing(guarded, httpserver, tenant):
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=httpserver.url_for("/hook"))
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    from django.db import transaction

    with transaction.atomic():
        event_emit(tenant=tenant, type="credential.verified", data={"x": 1})
    delivery = WebhookDelivery.objects.get(event__in=Event.objects.filter(tenant=tenant))
    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.kind in {"retrying", "failed"}
    assert "not a public address" in delivery.attempts.get().error
    assert httpserver.log == []
