"""Token refresh by a real Celery worker against the sandbox's OAuth2 server (rotating refresh
tokens, reuse protection on), under live_server and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import requests
from celery.signals import task_postrun, task_prerun
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model
from standardwebhooks import Webhook

from accounts.models import AuditLogEntry
from core.vault import open_secret
from integrations.models import Credential, Event, WebhookDelivery
from integrations.services.verification import credential_verify
from integrations.tasks import refresh_credential, sweep_refresh_due_credentials
from tests import factories
from tests.jobs.conftest import wait_until
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, TIMEOUT, obtain_tokens

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

RefreshToken = get_refresh_token_model()


def _credential_with_tokens(end_user, app, tokens: dict, *, expires_in: timedelta) -> Credential:
    """An OAuth2 credential as the connect flow stores it, expiring in ``expires_in``."""
    expires_at = timezone.now() + expires_in
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "token_type": "Bearer",
        },
        identity="alice@sandbox.test",
        expires_at=expires_at,
        refresh_at=expires_at - timedelta(seconds=app.refresh_buffer_seconds),
    )


def test_a_token_within_its_apps_refresh_buffer_is_refreshed_by_the_sweep_with_rotation(
    broker, live_server, end_user, oauth_app, alice
):
    tokens = obtain_tokens(live_server.url)
    due = _credential_with_tokens(end_user, oauth_app, tokens, expires_in=timedelta(minutes=10))
    later = factories.make_credential(
        end_user=end_user,
        app=oauth_app,
        secret={"access_token": "not-yet", "refresh_token": "not-yet"},
        expires_at=timezone.now() + timedelta(hours=1),
        refresh_at=timezone.now() + timedelta(minutes=45),
    )

    with broker.worker():
        sweep_refresh_due_credentials.delay()
        wait_until(lambda: Credential.objects.get(pk=due.pk).last_refreshed_at, what="the refresh")

    due.refresh_from_db()
    secret = open_secret(due)
    assert secret["refresh_token"] != tokens["refresh_token"]
    assert secret["access_token"] != tokens["access_token"]
    assert due.status == "active"
    assert due.expires_at > timezone.now() + timedelta(minutes=55)
    assert due.refresh_at == due.expires_at - timedelta(seconds=oauth_app.refresh_buffer_seconds)
    assert RefreshToken.objects.count() == 2
    assert RefreshToken.objects.filter(revoked__isnull=False).count() == 1
    assert Event.objects.filter(type="credential.refreshed").count() == 1
    assert credential_verify(credential_id=due.pk).kind == "verified"
    later.refresh_from_db()
    assert later.last_refreshed_at is None


def test_ten_concurrent_refresh_jobs_on_one_credential_cause_exactly_one_refresh_at_the_provider(
    broker, live_server, end_user, oauth_app, alice
):
    tokens = obtain_tokens(live_server.url)
    credential = _credential_with_tokens(
        end_user, oauth_app, tokens, expires_in=timedelta(minutes=5)
    )
    # All ten jobs start together: each waits here until the other nine have started too.
    barrier = threading.Barrier(10, timeout=15)
    finished: list[str] = []
    broken: list[bool] = []

    def start_together(sender=None, **_):
        if getattr(sender, "name", "") == refresh_credential.name:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                broken.append(True)

    def count_finished(sender=None, **kwargs):
        if getattr(sender, "name", "") == refresh_credential.name:
            finished.append(kwargs.get("task_id", ""))

    task_prerun.connect(start_together, weak=False)
    task_postrun.connect(count_finished, weak=False)
    try:
        with broker.worker(pool="threads", concurrency=10):
            for _ in range(10):
                refresh_credential.delay(str(credential.pk))
            wait_until(lambda: len(finished) >= 10, what="ten refresh jobs")
    finally:
        task_prerun.disconnect(start_together)
        task_postrun.disconnect(count_finished)

    assert not broken
    assert RefreshToken.objects.count() == 2  # the original and one rotation
    assert RefreshToken.objects.filter(revoked__isnull=False).count() == 1
    assert AuditLogEntry.objects.filter(action="credential.refresh", outcome="success").count() == 1
    assert not AuditLogEntry.objects.filter(action="credential.refresh", outcome="failure")
    credential.refresh_from_db()
    assert credential.status == "active"
    # Had a second job spent the old refresh token, reuse protection would have revoked this one.
    assert credential_verify(credential_id=credential.pk).kind == "verified"


def test_invalid_grant_expires_the_credential_and_sends_one_signed_credential_expired_webhook(
    broker, live_server, end_user, oauth_app, alice, httpserver, webhook_endpoint
):
    endpoint, secret = webhook_endpoint
    httpserver.expect_request("/hook", method="POST").respond_with_data("thanks")
    tokens = obtain_tokens(live_server.url)
    credential = _credential_with_tokens(
        end_user, oauth_app, tokens, expires_in=timedelta(minutes=5)
    )
    credential.label = "Alice's sandbox"
    credential.save(update_fields=["label"])
    # Someone else spends the refresh token: the grant the portal holds is gone.
    spent = requests.post(
        f"{live_server.url}/sandbox/o/token/",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    )
    assert spent.status_code == 200

    with broker.worker():
        sweep_refresh_due_credentials.delay()
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="succeeded").exists(),
            what="the webhook delivery",
        )

    credential.refresh_from_db()
    assert credential.status == "expired"
    assert "invalid_grant" in credential.last_verification_error
    assert Event.objects.filter(type="credential.expired").count() == 1
    assert len(httpserver.log) == 1
    request, _ = httpserver.log[0]
    body = request.get_data()
    payload = Webhook(secret).verify(body, dict(request.headers))
    assert payload["type"] == "credential.expired"
    assert request.headers["webhook-id"] == payload["id"]
    assert {
        key: payload["data"][key]
        for key in ("user_id", "user_email", "credential_id", "credential_name", "app")
    } == {
        "user_id": "user-1",
        "user_email": "ada@example.com",
        "credential_id": str(credential.pk),
        "credential_name": "Alice's sandbox",
        "app": "sandbox-oauth",
    }
    assert json.loads(body) == payload
    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == endpoint
    assert delivery.attempt_count == 1
