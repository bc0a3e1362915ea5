"""Delivering the outbox: each WebhookDelivery is POSTed to its endpoint, signed, at least once.

Signatures follow Standard Webhooks (the ``standardwebhooks`` package): ``webhook-id`` is the
event's id and stays the same across retries, so receivers can drop duplicates;
``webhook-timestamp`` is the attempt's time; ``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` with the endpoint's ``whsec_`` secret. The body is ``Event.payload()``.

An attempt runs under the delivery's row lock (``SKIP LOCKED``: a second worker skips the row)
and only for a pending delivery whose attempt count is the one the job was queued with, so two
workers never deliver the same delivery at once and a stale job does nothing. A 2xx marks it
delivered; a 5xx, 408, 429, timeout or connection error schedules another attempt with
exponential backoff until WEBHOOK_RETRY_WINDOW_SECONDS (24 hours) after the first attempt, then
marks it failed; any other answer (a receiver refusing it) marks it failed at once. Every
attempt is recorded with what the receiver answered.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import requests
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from core.conf import conf
from core.http import outbound_request
from core.prepared import PreparedRead
from core.redact import redact
from core.vault import VaultError
from core.writes import row_update, rows_insert
from integrations.models import Event, WebhookAttempt, WebhookDelivery
from integrations.services.jobs import backoff_seconds, webhook_delivery_enqueue
from integrations.services.webhooks import webhook_endpoint_secret

logger = logging.getLogger(__name__)

USER_AGENT = "ConnectPortal-Webhooks/1.0"
MAX_RESPONSE_BODY = 2000
MAX_ERROR = 500
CONNECT_TIMEOUT = 5.0


class DeliveryKind(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # another attempt is scheduled (``retry_in`` seconds)
    FAILED = "failed"
    SKIPPED = "skipped"  # gone, not pending, being delivered by another job, or a stale job


@dataclass(frozen=True)
class DeliveryOutcome:
    kind: DeliveryKind
    delivery: WebhookDelivery | None
    retry_in: float | None = None
    reason: str = ""

    @property
    def attempt_count(self) -> int:
        return self.delivery.attempt_count if self.delivery else 0


def webhook_signed_request(
    *, event: Event, secret: str, now: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery of ``event``, signed with ``secret``."""
    now = (now or timezone.now()).astimezone(UTC)
    body = json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False)
    signature = Webhook(secret).sign(msg_id=str(event.pk), timestamp=now, data=body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": str(event.pk),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def _is_retryable(status_code: int | None) -> bool:
    return status_code is None or status_code >= 500 or status_code in (408, 429)


def _series_started_at(delivery: WebhookDelivery) -> datetime:
    """When the first attempt of the current series was made (a redelivery starts a series)."""
    count = delivery.attempt_count
    started = list(
        delivery.attempts.order_by("-attempted_at", "-pk").values_list("attempted_at", flat=True)[
            count - 1 : count
        ]
    )
    return started[0] if started else delivery.created_at


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str, str]:
    """POST and return (status code, start of the response body, error)."""
    read_timeout = conf.WEBHOOK_TIMEOUT_SECONDS
    try:
        with outbound_request(
            "POST",
            url,
            data=body,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            chunk = next(response.iter_content(MAX_RESPONSE_BODY * 4), b"")
            text = chunk.decode(response.encoding or "utf-8", errors="replace")
            return response.status_code, text[:MAX_RESPONSE_BODY], ""
    except requests.Timeout:
        return None, "", f"The endpoint did not answer within {read_timeout:g} seconds."
    except requests.RequestException as exc:
        return (
            None,
            "",
            f"The endpoint could not be reached ({type(exc).__name__}: {exc})"[:MAX_ERROR],
        )


# An attempt's read of its delivery, under the lock, and its writes: built once (core/prepared.py,
# core/writes.py), since every event to every endpoint takes at least one attempt.
_locked_read = PreparedRead(
    lambda pk: (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("event", "endpoint")
        .filter(pk=pk)
    ),
    pk=WebhookDelivery._meta.pk,
)
ATTEMPT_FIELDS = ["status", "attempt_count", "last_status_code", "next_attempt_at", "delivered_at"]


def webhook_delivery_attempt(*, delivery_id, attempt: int | None = None) -> DeliveryOutcome:
    """Make one attempt of a pending delivery and record it (see the module docstring).

    ``attempt`` is the attempt count the job was queued with; a job whose count is stale (the
    attempt was already made by another job, or the delivery was redelivered) does nothing.
    """
    with transaction.atomic():
        found = _locked_read.run(pk=delivery_id)
        if not found:
            return DeliveryOutcome(
                DeliveryKind.SKIPPED, None, reason="Gone, or being delivered by another job."
            )
        (delivery,) = found
        if delivery.status != WebhookDelivery.Status.PENDING:
            return DeliveryOutcome(
                DeliveryKind.SKIPPED, delivery, reason=f"Already {delivery.status}."
            )
        if attempt is not None and delivery.attempt_count != attempt:
            return DeliveryOutcome(DeliveryKind.SKIPPED, delivery, reason="A stale job.")

        endpoint = delivery.endpoint
        started = time.monotonic()
        status_code: int | None = None
        response_body = error = ""
        if not endpoint.is_active:
            error = "The endpoint is disabled."
        else:
            try:
                secret = webhook_endpoint_secret(endpoint=endpoint)
            except (VaultError, KeyError) as exc:
                logger.error("Cannot open the signing secret of endpoint %s: %s", endpoint.pk, exc)
                secret = ""
                error = "The endpoint's signing secret cannot be read; rotate it in the admin."
            if secret:
                body, headers = webhook_signed_request(event=delivery.event, secret=secret)
                status_code, response_body, error = _post(endpoint.url, body, headers)
                # A receiver's answer is stored and shown: it may quote a secret back.
                response_body, error = redact(response_body, [secret]), redact(error, [secret])
        now = timezone.now()
        rows_insert(
            [
                WebhookAttempt(
                    delivery=delivery,
                    attempted_at=now,
                    status_code=status_code,
                    response_body=response_body,
                    error=error,
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            ]
        )
        delivery.attempt_count += 1
        delivery.last_status_code = status_code
        retry_in = None
        if status_code is not None and 200 <= status_code < 300:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            kind = DeliveryKind.SUCCEEDED
        elif endpoint.is_active and _is_retryable(status_code):
            retry_in = backoff_seconds(
                attempt=delivery.attempt_count,
                base=conf.WEBHOOK_RETRY_BASE_SECONDS,
                maximum=conf.WEBHOOK_RETRY_MAX_SECONDS,
            )
            window = timedelta(seconds=conf.WEBHOOK_RETRY_WINDOW_SECONDS)
            if now + timedelta(seconds=retry_in) > _series_started_at(delivery) + window:
                delivery.status = WebhookDelivery.Status.FAILED
                delivery.next_attempt_at = None
                retry_in = None
                kind = DeliveryKind.FAILED
            else:
                delivery.next_attempt_at = now + timedelta(seconds=retry_in)
                kind = DeliveryKind.RETRYING
        else:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
            kind = DeliveryKind.FAILED
        row_update(delivery, ATTEMPT_FIELDS)
    return DeliveryOutcome(kind, delivery, retry_in=retry_in, reason=error)


def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again from scratch: pending, a fresh series of attempts, queued now.

    Earlier attempts stay in its history.
    """
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.attempt_count = 0
        delivery.next_attempt_at = timezone.now()
        delivery.delivered_at = None
        delivery.save(update_fields=["status", "attempt_count", "next_attempt_at", "delivered_at"])
        webhook_delivery_enqueue(delivery_id=delivery.pk, attempt=0)
    return delivery
