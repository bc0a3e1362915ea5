"""The periodic sweeps: find what is due, claim it in batches, and queue one job per row.

Each ``*_due`` selector reads only rows that are due through a partial index whose condition it
repeats (``credential_refresh_due``, ``credential_reverify_due``, ``credential_pending``,
``delivery_due``), ordered by the indexed column, so a sweep costs the same whatever the table
size. Each ``sweep_*`` service claims a batch with ``SELECT … FOR UPDATE SKIP LOCKED`` (two
beat runs never claim the same rows), leases it by moving its due time forward (so the next
sweep leaves it alone while its job and the job's retries run; a lost job is picked up again
when the lease ends), and queues the jobs by id once the claim commits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.conf import conf
from integrations.models import Credential, WebhookDelivery
from integrations.services.jobs import (
    DELIVER_WEBHOOK,
    REFRESH_CREDENTIAL,
    VERIFY_CREDENTIAL,
    job_send,
)

logger = logging.getLogger(__name__)


# Selectors: what is due now. The benchmark times and explains exactly these.


def credentials_refresh_due(*, now: datetime) -> QuerySet[Credential]:
    """Active OAuth2 credentials whose refresh is scheduled by now (``credential_refresh_due``)."""
    return Credential.objects.filter(
        status=Credential.Status.ACTIVE, refresh_at__isnull=False, refresh_at__lte=now
    ).order_by("refresh_at")


def credentials_reverify_due(*, now: datetime) -> QuerySet[Credential]:
    """Active credentials due for re-verification (``credential_reverify_due``)."""
    return Credential.objects.filter(
        status=Credential.Status.ACTIVE,
        next_verification_at__isnull=False,
        next_verification_at__lte=now,
    ).order_by("next_verification_at")


def credentials_pending_stuck(*, now: datetime) -> QuerySet[Credential]:
    """Credentials pending for longer than PENDING_AFTER_SECONDS (``credential_pending``):
    their verification job was never queued (the broker was down) or was lost."""
    cutoff = now - timedelta(seconds=conf.PENDING_AFTER_SECONDS)
    return Credential.objects.filter(
        status=Credential.Status.PENDING, updated_at__lte=cutoff
    ).order_by("updated_at")


def webhook_deliveries_due(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose next attempt is due (``delivery_due``)."""
    return WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__isnull=False,
        next_attempt_at__lte=now,
    ).order_by("next_attempt_at")


# Services: claim, lease and queue.


@dataclass(frozen=True)
class SweepResult:
    queued: int
    batches: int


def _sweep(
    *,
    due: QuerySet,
    fields: tuple[str, ...],
    lease: dict[str, Any],
    enqueue: Callable[..., None],
) -> SweepResult:
    queued = batches = 0
    batch_size = conf.SWEEP_BATCH_SIZE
    for _ in range(conf.SWEEP_MAX_BATCHES):
        with transaction.atomic():
            rows = list(due.select_for_update(skip_locked=True).values_list(*fields)[:batch_size])
            if not rows:
                break
            due.model.objects.filter(pk__in=[row[0] for row in rows]).update(**lease)
            for row in rows:
                transaction.on_commit(functools.partial(enqueue, str(row[0]), *row[1:]))
        queued += len(rows)
        batches += 1
        if len(rows) < batch_size:
            break
    if queued:
        logger.info("Queued %d job(s) in %d batch(es).", queued, batches)
    return SweepResult(queued=queued, batches=batches)


def sweep_refresh_due(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_refresh_due(now=now),
        fields=("pk",),
        lease={"refresh_at": now + timedelta(seconds=conf.REFRESH_LEASE_SECONDS)},
        enqueue=functools.partial(job_send, REFRESH_CREDENTIAL),
    )


def sweep_reverify_due(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_reverify_due(now=now),
        fields=("pk",),
        lease={"next_verification_at": now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)},
        enqueue=functools.partial(job_send, VERIFY_CREDENTIAL),
    )


def sweep_pending_credentials(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_pending_stuck(now=now),
        fields=("pk",),
        lease={"updated_at": now},
        enqueue=functools.partial(job_send, VERIFY_CREDENTIAL),
    )


def sweep_webhook_deliveries(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=webhook_deliveries_due(now=now),
        fields=("pk", "attempt_count"),
        lease={"next_attempt_at": now + timedelta(seconds=conf.WEBHOOK_LEASE_SECONDS)},
        enqueue=functools.partial(job_send, DELIVER_WEBHOOK),
    )
