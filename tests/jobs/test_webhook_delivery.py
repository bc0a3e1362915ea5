"""The delivery service against a real local receiver (pytest-httpserver): signing, recording
attempts, backoff and the 24-hour limit, redelivery, and the admin's view of it all."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Response

from accounts.models import Membership
from integrations.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.services.events import event_emit
from integrations.services.webhook_delivery import (
    webhook_delivery_attempt,
    webhook_delivery_redeliver,
)
from integrations.services.webhooks import webhook_endpoint_secret_rotate


def _emit(tenant, type="credential.verified", data=None) -> WebhookDelivery:
    with transaction.atomic():
        event = event_emit(tenant=tenant, type=type, data=data or {"credential_id": "c-1"})
    return WebhookDelivery.objects.get(event=event)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_delivery_is_signed_so_that_standardwebhooks_verifies_it_and_carries_the_payload(
    db, tenant, httpserver, webhook_endpoint
):
    _, secret = webhook_endpoint
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    delivery = _emit(tenant, data={"credential_id": "c-1", "app": "github"})

    outcome = webhook_delivery_attempt(delivery_id=delivery.pk, attempt=0)

    assert outcome.kind == "succeeded"
    request, _ = httpserver.log[0]
    payload = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert payload == delivery.event.payload()
    assert payload["data"] == {"credential_id": "c-1", "app": "github"}
    assert request.headers["webhook-id"] == str(delivery.event.pk)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["Content-Type"] == "application/json"


def test_a_receiver_holding_a_wrong_secret_fails_verification(
    db, tenant, httpserver, webhook_endpoint
):
    endpoint, old_secret = webhook_endpoint
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    delivery = _emit(tenant)

    webhook_delivery_attempt(delivery_id=delivery.pk)

    request, _ = httpserver.log[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.get_data(), dict(request.headers))


def test_a_tampered_body_fails_verification(db, tenant, httpserver, webhook_endpoint):
    _, secret = webhook_endpoint
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook_delivery_attempt(delivery_id=_emit(tenant).pk)

    request, _ = httpserver.log[0]
    tampered = json.loads(request.get_data())
    tampered["type"] = "credential.deleted"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(json.dumps(tampered), dict(request.headers))


def test_a_500_is_recorded_and_retried_later_with_growing_backoff(
    db, tenant, httpserver, webhook_endpoint, settings
):
    settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS = 60
    settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS = 3600
    httpserver.expect_request("/hook", method="POST").respond_with_data("boom", status=500)
    delivery = _emit(tenant)

    first = webhook_delivery_attempt(delivery_id=delivery.pk, attempt=0)
    second = webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)

    assert (first.kind, second.kind) == ("retrying", "retrying")
    assert 50 <= first.retry_in <= 70
    assert 100 <= second.retry_in <= 140
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.attempt_count == 2
    assert delivery.last_status_code == 500
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=90)
    assert [(a.status_code, a.response_body) for a in delivery.attempts.all()] == [
        (500, "boom"),
        (500, "boom"),
    ]


def test_a_429_a_timeout_and_a_connection_error_are_recorded_and_retried(
    db, tenant, httpserver, webhook_endpoint, settings
):
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 0.3
    endpoint, _ = webhook_endpoint
    answers = iter(["429", "slow"])

    def receiver(request):
        answer = next(answers)
        if answer == "slow":
            time.sleep(0.6)
        return Response("busy", status=429 if answer == "429" else 200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    delivery = _emit(tenant)

    kinds = [webhook_delivery_attempt(delivery_id=delivery.pk).kind for _ in range(2)]
    endpoint.url = f"http://127.0.0.1:{_free_port()}/hook"
    endpoint.save(update_fields=["url"])
    kinds.append(webhook_delivery_attempt(delivery_id=delivery.pk).kind)

    assert kinds == ["retrying", "retrying", "retrying"]
    attempts = list(delivery.attempts.all())
    assert attempts[0].status_code == 429
    assert attempts[1].status_code is None and "did not answer within" in attempts[1].error
    assert attempts[2].status_code is None and "could not be reached" in attempts[2].error
    assert all(attempt.duration_ms >= 0 for attempt in attempts)
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "pending"


def test_a_delivery_still_failing_24_hours_after_its_first_attempt_is_marked_failed(
    db, tenant, httpserver, webhook_endpoint
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("down", status=503)
    delivery = _emit(tenant)
    assert webhook_delivery_attempt(delivery_id=delivery.pk).kind == "retrying"
    # The first attempt was a day ago.
    WebhookAttempt.objects.filter(delivery=delivery).update(
        attempted_at=timezone.now() - timedelta(hours=24, minutes=1)
    )

    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert outcome.kind == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.next_attempt_at is None
    assert delivery.attempts.count() == 2


def test_a_receiver_refusing_with_400_fails_the_delivery_at_once_with_its_answer_recorded(
    db, tenant, httpserver, webhook_endpoint
):
    httpserver.expect_request("/hook", method="POST").respond_with_json(
        {"error": "unknown event type"}, status=400
    )
    delivery = _emit(tenant)

    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert outcome.kind == "failed"
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code == 400
    assert "unknown event type" in attempt.response_body


def test_a_long_response_body_is_truncated_in_the_attempt_log(
    db, tenant, httpserver, webhook_endpoint
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("x" * 100_000)
    delivery = _emit(tenant)

    webhook_delivery_attempt(delivery_id=delivery.pk)

    assert len(WebhookAttempt.objects.get(delivery=delivery).response_body) == 2000


def test_a_stale_job_and_a_delivered_delivery_send_nothing(
    db, tenant, httpserver, webhook_endpoint
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    delivery = _emit(tenant)

    assert webhook_delivery_attempt(delivery_id=delivery.pk, attempt=3).kind == "skipped"
    assert webhook_delivery_attempt(delivery_id=delivery.pk, attempt=0).kind == "succeeded"
    assert webhook_delivery_attempt(delivery_id=delivery.pk, attempt=0).kind == "skipped"
    assert webhook_delivery_attempt(delivery_id=delivery.pk).kind == "skipped"
    assert len(httpserver.log) == 1


def test_redelivery_sends_a_delivered_event_again_and_keeps_the_earlier_attempts(
    db, tenant, httpserver, webhook_endpoint, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    delivery = _emit(tenant)
    webhook_delivery_attempt(delivery_id=delivery.pk)

    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery_redeliver(delivery=delivery)

    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 1  # the new series
    assert delivery.attempts.count() == 2
    assert len(httpserver.log) == 2
    ids = {request.headers["webhook-id"] for request, _ in httpserver.log}
    assert ids == {str(delivery.event_id)}


def test_an_event_is_sent_when_its_transaction_commits_and_never_when_it_rolls_back(
    db, tenant, httpserver, webhook_endpoint, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event_emit(tenant=tenant, type="credential.verified", data={})
    with django_capture_on_commit_callbacks(execute=True) as rolled_back:
        with pytest.raises(RuntimeError), transaction.atomic():
            event_emit(tenant=tenant, type="credential.deleted", data={})
            raise RuntimeError("the change failed")

    assert rolled_back == []
    assert [json.loads(request.get_data())["type"] for request, _ in httpserver.log] == [
        "credential.verified"
    ]
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.verified"]
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_an_endpoint_only_gets_the_event_types_it_asked_for(db, tenant, httpserver):
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url=httpserver.url_for("/hook"), event_types=["credential.expired"]
    )
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    with transaction.atomic():
        event_emit(tenant=tenant, type="credential.verified", data={})
        event_emit(tenant=tenant, type="credential.expired", data={})

    assert list(WebhookDelivery.objects.values_list("event__type", flat=True)) == [
        "credential.expired"
    ]


# The admin.

User = get_user_model()


def _staff(tenant, role):
    user = User.objects.create_user(
        username=f"{role}@acme.test", email=f"{role}@acme.test", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def test_the_admin_shows_a_deliverys_attempts_and_responses_and_redelivers_it(
    client, tenant, httpserver, webhook_endpoint, django_capture_on_commit_callbacks
):
    answers = iter([Response("receiver exploded", status=500)])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(
        lambda request: next(answers, None) or Response("fine now", status=200)
    )
    delivery = _emit(tenant)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    client.force_login(_staff(tenant, Membership.Role.ADMIN))

    page = client.get(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    assert "receiver exploded" in page.content.decode()
    assert "credential.verified" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:integrations_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
            follow=True,
        )
    assert "Queued 1 delivery again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    page = client.get(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk]))
    assert "fine now" in page.content.decode()


def test_a_tenant_viewer_sees_deliveries_but_cannot_redeliver_them(
    client, tenant, httpserver, webhook_endpoint
):
    delivery = _emit(tenant)
    client.force_login(_staff(tenant, Membership.Role.VIEWER))

    changelist = client.get(reverse("admin:integrations_webhookdelivery_changelist"))
    response = client.post(
        reverse("admin:integrations_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
    )

    assert changelist.status_code == 200
    assert 'value="redeliver"' not in changelist.content.decode()
    assert response.status_code in (200, 302)
    assert delivery.attempts.count() == 0
    assert len(httpserver.log) == 0


@pytest.mark.postgres
def test_two_workers_attempting_one_delivery_at_once_send_it_once(
    transactional_db, tenant, httpserver, webhook_endpoint
):
    def slow_receiver(request):
        time.sleep(0.5)
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow_receiver)
    endpoint, _ = webhook_endpoint
    # Written directly: emitting would deliver it on commit (tasks run eagerly here).
    event = Event.objects.create(tenant=tenant, type="credential.verified", data={})
    delivery = WebhookDelivery.objects.create(
        event=event, endpoint=endpoint, next_attempt_at=timezone.now()
    )
    start = threading.Barrier(2, timeout=10)
    kinds: list[str] = []

    def worker():
        start.wait()
        try:
            kinds.append(webhook_delivery_attempt(delivery_id=delivery.pk, attempt=0).kind)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(kinds) == ["skipped", "succeeded"]
    assert len(httpserver.log) == 1
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
