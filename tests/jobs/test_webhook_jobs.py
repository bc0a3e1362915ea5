"""Webhook deliveries by a real Celery worker on Redis to a real local receiver."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from standardwebhooks import Webhook
from werkzeug import Response

from integrations.models import WebhookAttempt, WebhookDelivery
from integrations.services.events import event_emit
from integrations.tasks import sweep_webhook_deliveries_due
from tests.jobs.conftest import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_a_receiver_answering_500_twice_then_200_gets_the_event_delivered_once_with_three_attempts(
    broker, tenant, httpserver, webhook_endpoint
):
    _, secret = webhook_endpoint
    answers = iter([Response("oops", status=500), Response("still oops", status=500)])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(
        lambda request: next(answers, None) or Response("got it", status=200)
    )

    with broker.worker():
        with transaction.atomic():
            event = event_emit(tenant=tenant, type="credential.verified", data={"n": 1})
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="succeeded").exists(),
            what="the delivery",
        )
        time.sleep(0.5)  # a duplicate would arrive within this

    delivery = WebhookDelivery.objects.get()
    assert delivery.attempt_count == 3
    assert delivery.last_status_code == 200
    assert delivery.delivered_at is not None
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery))
    assert [(a.status_code, a.response_body) for a in attempts] == [
        (500, "oops"),
        (500, "still oops"),
        (200, "got it"),
    ]
    successes = [entry for entry in httpserver.log if entry[1].status_code == 200]
    assert len(successes) == 1
    # Every attempt carries the same webhook-id (receivers drop duplicates by it), and each
    # one is signed afresh.
    for request, _ in httpserver.log:
        assert request.headers["webhook-id"] == str(event.pk)
        assert Webhook(secret).verify(request.get_data(), dict(request.headers))["id"] == str(
            event.pk
        )


def test_a_delivery_whose_job_was_lost_is_sent_by_the_sweep(
    broker, tenant, httpserver, webhook_endpoint
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    broker.down()
    with transaction.atomic():
        event_emit(tenant=tenant, type="credential.verified", data={})
    assert WebhookDelivery.objects.get().status == "pending"

    broker.up()
    with broker.worker():
        sweep_webhook_deliveries_due.delay()
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="succeeded").exists(),
            what="the swept delivery",
        )

    assert len(httpserver.log) == 1
