"""Celery tasks: each takes ids, re-reads, calls a service, and owns its retries.

Every job has a database row behind it that a beat sweep (``integrations.services.sweeps``)
finds again if the job is never queued or is lost, so:

- queueing never fails the caller: with the broker down the job is logged as not queued and
  the sweep picks the row up once the broker is back (``PortalTask.apply_async``);
- retries with a short wait are Celery retries with exponential backoff; a longer wait, a retry
  in eager mode (no broker: it could not wait) and a job past its retries are left to the sweeps;
- jobs are idempotent (the services lock and re-read their row), so ``acks_late`` is safe: a
  worker lost mid-job means the job runs again.

The sweeps queue credentials in batches (``verify_credentials``, ``refresh_credentials``): a
worker's own cost per job (taking the message from Redis, acknowledging it, tracing it) is then
paid once per batch instead of once per credential. Inside a batch each credential is handled
exactly as its single job would handle it (its own claim, transaction, audit entry and events),
one after another; a provider that is down gets the credential a single job of its own that
retries with the same backoff, and a credential that fails unexpectedly is logged and left to the
sweep (its lease runs out) while the rest of the batch goes on. A batch starts a credential only
while its lease surely outlasts one more provider call (``_batch_budget``): behind a slow
provider the rest are left to a later sweep rather than run after their lease ended, when a later
sweep may have queued them again (twice-verified pending accounts, twice-sent events).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from celery import Task, shared_task
from django.db import connections
from kombu.exceptions import OperationalError

from core.conf import conf
from integrations.services.jobs import (
    DELIVER_WEBHOOK,
    REFRESH_CREDENTIAL,
    REFRESH_CREDENTIALS,
    RUN_WORKFLOW,
    VERIFY_CREDENTIAL,
    VERIFY_CREDENTIALS,
    backoff_seconds,
    job_send,
)
from integrations.services.refresh import RefreshKind, credential_refresh
from integrations.services.sweeps import (
    refresh_lease_extend,
    reverify_claim_take,
    reverify_lease_extend,
    sweep_pending_credentials,
    sweep_refresh_due,
    sweep_reverify_due,
    sweep_webhook_deliveries,
)
from integrations.services.verification import VerifyKind, credential_verify
from integrations.services.webhook_delivery import DeliveryKind, webhook_delivery_attempt
from integrations.services.workflow_runs import (
    workflow_run_execute,
    workflow_runs_purge,
    workflow_runs_recover,
)

logger = logging.getLogger(__name__)


class PortalTask(Task):
    """A task whose queueing never fails the caller (see the module docstring)."""

    def apply_async(self, args=None, kwargs=None, **options):
        try:
            return super().apply_async(args, kwargs, **options)
        except OperationalError as exc:
            logger.warning(
                "Could not queue %s%s (%s); the sweeps will pick it up.", self.name, args, exc
            )
            return None


def _retry_later(
    task: Task, *, delay: float, max_retries: int | None, args: tuple | None = None
) -> None:
    """Retry ``task`` in ``delay`` seconds, or leave it to the sweeps (see the docstring)."""
    request = task.request
    if request.is_eager or request.called_directly:
        return
    if max_retries is not None and request.retries >= max_retries:
        logger.info("%s%s is out of retries; the sweeps take over.", task.name, request.args)
        return
    if delay > conf.TASK_MAX_COUNTDOWN_SECONDS:
        return
    raise task.retry(args=args, countdown=delay)


def _retry_in_own_job(
    task: Task, name: str, args: tuple, *, delay: float, max_retries: int | None
) -> None:
    """A batch's credential whose provider did not answer: its first retry, as a single job
    (``name``) queued in ``delay`` seconds, which then retries as any single job does."""
    request = task.request
    if request.is_eager or request.called_directly:
        return
    if (max_retries is not None and max_retries < 1) or delay > conf.TASK_MAX_COUNTDOWN_SECONDS:
        return
    job_send(name, *args, countdown=delay, retries=1)


def _batch_budget(lease_seconds: float) -> float:
    """How long after its start a batch may still start a credential: the lease, less the
    sweep's spread (the job may start that late) and one provider call at its timeouts."""
    return max(0.0, lease_seconds - conf.SWEEP_SPREAD_SECONDS - sum(conf.OUTBOUND_TIMEOUT))


def _each(
    credential_ids: list[str], step: Callable[[str], str], *, budget: float
) -> dict[str, int]:
    """Run ``step`` for each credential of a batch; one that fails does not stop the others.
    Past ``budget`` seconds the rest are left to the sweep (their leases run out)."""
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    for position, credential_id in enumerate(credential_ids):
        if position and time.monotonic() - started > budget:
            left = len(credential_ids) - position
            logger.info("A batch left %d credential(s) to the next sweep (slow provider).", left)
            outcomes["left"] += left
            break
        try:
            outcomes[str(step(credential_id))] += 1
        except Exception:
            # Its lease runs out and the sweep queues it again.
            logger.exception("%s failed; the sweep will queue it again.", credential_id)
            outcomes["error"] += 1
        # A broken or too old connection is replaced before the next credential, as between
        # two jobs (portal/celery.py); a batch may run for a while on one.
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
    return dict(outcomes)


def _verification(
    credential_id: str, claim: str | None, *, attempt: int
) -> tuple[str, float | None, str | None]:
    """Verify one credential (under its lease ``claim``, when the reverify sweep queued it):
    (the outcome, the delay before a retry or None, the claim the retry holds)."""
    if claim is not None:
        claim = reverify_claim_take(credential_id=credential_id, claim=claim)
        if claim is None:
            return VerifyKind.SKIPPED, None, None
    outcome = credential_verify(credential_id=credential_id)
    if outcome.kind != VerifyKind.UNAVAILABLE:
        return outcome.kind, None, claim
    backoff = backoff_seconds(
        attempt=attempt,
        base=conf.VERIFY_RETRY_BASE_SECONDS,
        maximum=conf.VERIFY_RETRY_MAX_SECONDS,
    )
    delay = backoff if outcome.retry_after is None else outcome.retry_after
    if claim is not None:
        claim = reverify_lease_extend(credential_id=credential_id, seconds=delay)
    return outcome.kind, delay, claim


@shared_task(
    name=VERIFY_CREDENTIAL,
    base=PortalTask,
    bind=True,
    acks_late=True,
    max_retries=None,
    ignore_result=True,
)
def verify_credential(self, credential_id: str, claim: str | None = None) -> str:
    """Verify one credential; a provider that is down, busy (429) or slow is retried with
    backoff, honouring ``Retry-After``, and the credential's status never changes for it.

    A job queued by the re-verification sweep carries the lease it was queued under
    (``claim``): it takes the row's lease when it starts, or skips itself when it is stale,
    and keeps the row leased while it waits for a retry (``integrations.services.sweeps``).
    """
    kind, delay, claim = _verification(credential_id, claim, attempt=self.request.retries + 1)
    if delay is not None:
        _retry_later(
            self, delay=delay, max_retries=conf.VERIFY_MAX_RETRIES, args=(credential_id, claim)
        )
    return kind


@shared_task(
    name=VERIFY_CREDENTIALS,
    base=PortalTask,
    bind=True,
    acks_late=True,
    ignore_result=True,
)
def verify_credentials(self, credential_ids: list[str], claim: str | None = None) -> dict:
    """A sweep's batch: each credential verified as ``verify_credential`` would (see the
    module docstring), all under the lease the batch was queued under (``claim``)."""

    def step(credential_id: str) -> str:
        kind, delay, retry_claim = _verification(credential_id, claim, attempt=1)
        if delay is not None:
            _retry_in_own_job(
                self,
                VERIFY_CREDENTIAL,
                (credential_id, retry_claim),
                delay=delay,
                max_retries=conf.VERIFY_MAX_RETRIES,
            )
        return kind

    lease = conf.REVERIFY_LEASE_SECONDS if claim is not None else conf.PENDING_AFTER_SECONDS
    return _each(credential_ids, step, budget=_batch_budget(lease))


def _refresh(credential_id: str, *, attempt: int) -> tuple[str, float | None]:
    """Refresh one credential if it is (still) due: (the outcome, the delay before a retry)."""
    outcome = credential_refresh(credential_id=credential_id)
    if outcome.kind != RefreshKind.UNAVAILABLE:
        return outcome.kind, None
    delay = backoff_seconds(
        attempt=attempt,
        base=conf.REFRESH_RETRY_BASE_SECONDS,
        maximum=conf.REFRESH_RETRY_MAX_SECONDS,
    )
    refresh_lease_extend(credential_id=credential_id, seconds=delay)
    return outcome.kind, delay


@shared_task(
    name=REFRESH_CREDENTIAL,
    base=PortalTask,
    bind=True,
    acks_late=True,
    max_retries=None,
    ignore_result=True,
)
def refresh_credential(self, credential_id: str) -> str:
    """Refresh one OAuth2 credential if it is (still) due; a provider that is down is retried."""
    kind, delay = _refresh(credential_id, attempt=self.request.retries + 1)
    if delay is not None:
        _retry_later(self, delay=delay, max_retries=conf.REFRESH_MAX_RETRIES)
    return kind


@shared_task(
    name=REFRESH_CREDENTIALS,
    base=PortalTask,
    bind=True,
    acks_late=True,
    ignore_result=True,
)
def refresh_credentials(self, credential_ids: list[str]) -> dict:
    """A sweep's batch: each credential refreshed as ``refresh_credential`` would."""

    def step(credential_id: str) -> str:
        kind, delay = _refresh(credential_id, attempt=1)
        if delay is not None:
            _retry_in_own_job(
                self,
                REFRESH_CREDENTIAL,
                (credential_id,),
                delay=delay,
                max_retries=conf.REFRESH_MAX_RETRIES,
            )
        return kind

    return _each(credential_ids, step, budget=_batch_budget(conf.REFRESH_LEASE_SECONDS))


@shared_task(
    name=DELIVER_WEBHOOK,
    base=PortalTask,
    bind=True,
    acks_late=True,
    max_retries=None,
    ignore_result=True,
)
def deliver_webhook(self, delivery_id: str, attempt: int | None = None) -> str:
    """Make one attempt of a webhook delivery; the delivery's own schedule (backoff for up to
    24 hours) decides when the next one is due, and this job queues it."""
    outcome = webhook_delivery_attempt(delivery_id=delivery_id, attempt=attempt)
    if outcome.kind == DeliveryKind.RETRYING and outcome.retry_in is not None:
        request = self.request
        if not (request.is_eager or request.called_directly) and (
            outcome.retry_in <= conf.TASK_MAX_COUNTDOWN_SECONDS
        ):
            raise self.retry(args=[delivery_id, outcome.attempt_count], countdown=outcome.retry_in)
    return outcome.kind


@shared_task(
    name=RUN_WORKFLOW,
    base=PortalTask,
    bind=True,
    acks_late=True,
    ignore_result=True,
)
def run_workflow(self, run_id: str) -> str:
    """Execute one queued workflow run; a run already claimed is left alone, so a redelivered
    job never runs the steps twice."""
    return workflow_run_execute(run_id=run_id).status


# The beat sweeps. A sweep is cheap to repeat and the next run follows soon, so an expired or
# lost sweep job is simply dropped (the beat schedule sets ``expires``).


@shared_task(base=PortalTask, ignore_result=True)
def sweep_refresh_due_credentials() -> int:
    return sweep_refresh_due().queued


@shared_task(base=PortalTask, ignore_result=True)
def sweep_reverify_due_credentials() -> int:
    return sweep_reverify_due().queued


@shared_task(base=PortalTask, ignore_result=True)
def sweep_pending_credentials_stuck() -> int:
    return sweep_pending_credentials().queued


@shared_task(base=PortalTask, ignore_result=True)
def sweep_webhook_deliveries_due() -> int:
    return sweep_webhook_deliveries().queued


@shared_task(base=PortalTask, ignore_result=True)
def recover_workflow_runs() -> int:
    recovered = workflow_runs_recover()
    return recovered.requeued + recovered.failed


@shared_task(base=PortalTask, ignore_result=True)
def purge_old_workflow_runs() -> int:
    return workflow_runs_purge()
