"""Redis stops while the API, the modal and staff sign-in are used: nothing answers 5xx, every
API answer keeps the error shape, the rate limits still hold (counted in the process), and the
work that could not be queued is done by the sweeps once Redis is back."""

from __future__ import annotations

import logging

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from core.cache import cache_fallback_stats
from integrations.models import Credential, WebhookDelivery, WebhookEndpoint
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from integrations.tasks import sweep_webhook_deliveries_due
from sandbox.catalog import SANDBOX_API_KEY
from tests.api.conftest import client_for, error_of
from tests.faults.conftest import celery_worker, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-123456789"


def _assert_api_answer(response, *, expected: int) -> None:
    """No 5xx, and anything that is not a success is in the API's error shape."""
    assert response.status_code == expected, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        error_of(response)


def _staff(world) -> None:
    user = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password=PASSWORD, is_staff=True
    )
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    Membership.objects.create(user=user, tenant=world.tenant)


def test_with_redis_down_api_modal_and_sign_in_answer_and_the_work_is_done_once_it_is_back(
    world, redis_everywhere, settings, httpserver, caplog
):
    settings.PORTAL_API_RATE_LIMIT = "30/m"
    api = client_for(world.tenant)
    endpoint = WebhookEndpoint.objects.create(tenant=world.tenant, url=httpserver.url_for("/hook"))
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    _staff(world)
    user_path = f"/api/v1/users/{world.end_user.external_id}"
    _assert_api_answer(api.get(user_path), expected=200)

    redis_everywhere.stop()
    caplog.set_level(logging.WARNING)

    # The API: reads, a session, a new account (verified inline), errors, all in its shape.
    _assert_api_answer(api.get(user_path), expected=200)
    _assert_api_answer(api.get("/api/v1/credentials"), expected=200)
    _assert_api_answer(api.get("/api/v1/users/nobody"), expected=404)
    _assert_api_answer(api.post("/api/v1/sessions", {"end_user": {}}), expected=422)
    session = api.post(
        "/api/v1/sessions",
        {"end_user": {"id": world.end_user.external_id}, "deployment_id": str(world.deployment.pk)},
    )
    _assert_api_answer(session, expected=201)
    created = api.post(
        "/api/v1/credentials",
        {
            "user": world.end_user.external_id,
            "app": SANDBOX_API_KEY,
            "fields": {"api_key": world.api_key()},
        },
    )
    _assert_api_answer(created, expected=201)
    credential = Credential.objects.get(pk=created.json()["id"])
    assert credential.status == Credential.Status.ACTIVE
    # Its credential.created webhook could not be queued: the row waits for the sweep.
    held_back = WebhookDelivery.objects.filter(event__data__credential_id=str(credential.pk))
    assert {delivery.status for delivery in held_back} == {WebhookDelivery.Status.PENDING}
    delivery = held_back.get(event__type="credential.created")
    assert "the sweeps will pick it up" in caplog.text

    # The modal, opened from the session the API just made, connects a second account.
    modal = Client()
    page = modal.get(session.json()["url"].removeprefix(settings.PORTAL_BASE_URL))
    assert page.status_code == 200
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": world.token}
    connected = modal.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": world.api_key("bob@sandbox.test"), "portal_label": "Second"},
        **hx,
    )
    assert connected.status_code == 200
    assert Credential.objects.filter(end_user=world.end_user, label="Second").exists()

    # Staff sign-in: a wrong password is refused, the right one signs in, and the limit on
    # failed attempts still holds while it is counted in this process.
    staff = Client()
    wrong = staff.post(reverse("account_login"), {"login": "staff@acme.test", "password": "no"})
    assert wrong.status_code == 200
    right = staff.post(reverse("account_login"), {"login": "staff@acme.test", "password": PASSWORD})
    assert right.status_code == 302
    assert staff.get(reverse("admin:index")).status_code == 200
    attacker = Client()
    attempts = [
        attacker.post(reverse("account_login"), {"login": "staff@acme.test", "password": "no"})
        for _ in range(6)
    ]
    assert max(attempt.status_code for attempt in attempts) < 500
    assert "Too many failed login attempts" in attempts[-1].content.decode()
    assert "Too many failed login attempts" not in attempts[0].content.decode()

    # The API's rate limit still holds: 30 a minute, in the error shape, with Retry-After.
    # 61 calls: even if a minute's window turns over during them, one window gets more than 30.
    answers = [api.get("/api/v1/credentials") for _ in range(61)]
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited
    for answer in answers:
        _assert_api_answer(answer, expected=answer.status_code)
        assert answer.status_code in (200, 429)
    assert int(limited[0]["Retry-After"]) >= 1
    assert error_of(limited[0])["code"] == "rate_limited"

    stats = cache_fallback_stats()
    assert stats["degraded"] is True
    assert stats["outages"] >= 1
    assert stats["local_calls"] > 0
    assert "Redis cache unreachable" in caplog.text

    # Redis is back: the cache uses it again, and the sweep sends the waiting webhook.
    redis_everywhere.start()
    wait_until(
        lambda: api.get(user_path).status_code == 200 and not cache_fallback_stats()["degraded"],
        what="the cache to use Redis again",
    )
    with celery_worker():
        sweep_webhook_deliveries_due.delay()
        wait_until(
            lambda: (
                WebhookDelivery.objects.get(pk=delivery.pk).status
                == WebhookDelivery.Status.SUCCEEDED
            ),
            what="the webhook delivery the outage held back",
        )
    sent = [request for request, _ in httpserver.log if request.path == "/hook"]
    assert any(str(credential.pk).encode() in request.get_data() for request in sent)
