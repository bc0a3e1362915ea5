"""The Celery app. Tasks live in each Django app's ``tasks.py``; settings use the CELERY_ prefix.

Beat runs the sweeps below (``celery -A portal beat``). Each sweep claims what is due in batches
through an index and queues their jobs (credentials in batches of 20); a sweep job that waited
longer than its interval is dropped (``expires``), since the next run does the same work.
"""

import os

from celery import Celery
from celery.fixups.django import DjangoFixup, DjangoWorkerFixup
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")


class WorkerFixup(DjangoWorkerFixup):
    """Database connections live between jobs as they do between requests.

    Celery's fixup closes every connection before and after each task, whatever
    ``CONN_MAX_AGE`` says, so each job paid for a new PostgreSQL connection. Here a job starts
    and ends as a request does (``close_old_connections``): a connection older than
    ``CONN_MAX_AGE``, or left broken or mid-transaction, is closed, and ``CONN_HEALTH_CHECKS``
    tests a kept one before its next use. In a thread pool each thread keeps its own.
    """

    def on_task_prerun(self, sender, **kwargs) -> None:
        if not getattr(sender.request, "is_eager", False):
            close_old_connections()

    def on_task_postrun(self, sender, **kwargs) -> None:
        if not getattr(sender.request, "is_eager", False):
            close_old_connections()
            self.close_cache()


class Fixup(DjangoFixup):
    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = WorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: DjangoWorkerFixup) -> None:
        self._worker_fixup = value


def django_fixup(app: Celery) -> DjangoFixup:
    return Fixup(app).install()


# Celery's own Django fixup, replaced by the one above.
app = Celery("portal", fixups=["portal.celery:django_fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _every(seconds: int, task: str) -> dict:
    return {"task": task, "schedule": float(seconds), "options": {"expires": seconds}}


# Every sweep runs every 30 s: with the leases of core.conf (45 s), work stranded by a
# killed worker or a Redis outage is queued again within two minutes (integrations/services/
# sweeps.py). A run that finds nothing due costs one index lookup.
SWEEP_INTERVAL_SECONDS = 30

app.conf.beat_schedule = {
    # OAuth2 tokens within their app's refresh buffer of expiry.
    "refresh-due-credentials": _every(
        SWEEP_INTERVAL_SECONDS, "integrations.tasks.sweep_refresh_due_credentials"
    ),
    # Webhook deliveries whose next attempt is due (first attempts whose job was lost, retries).
    "deliver-due-webhooks": _every(
        SWEEP_INTERVAL_SECONDS, "integrations.tasks.sweep_webhook_deliveries_due"
    ),
    # Long-lived credentials (API keys, tokens without expiry) due for re-verification, and
    # re-verifications whose job was lost (their lease ended).
    "reverify-due-credentials": _every(
        SWEEP_INTERVAL_SECONDS, "integrations.tasks.sweep_reverify_due_credentials"
    ),
    # Credentials left pending (their verification job was never queued, or was lost).
    "verify-stuck-pending-credentials": _every(
        SWEEP_INTERVAL_SECONDS, "integrations.tasks.sweep_pending_credentials_stuck"
    ),
    # Workflow runs whose job was lost (queued again) or whose process ended midway (failed).
    "recover-workflow-runs": _every(
        SWEEP_INTERVAL_SECONDS, "integrations.tasks.recover_workflow_runs"
    ),
    # The API's expired idempotency keys.
    "purge-idempotency-keys": _every(3600, "api.tasks.purge_idempotency_keys"),
    # Workflow runs older than PORTAL_WORKFLOW_RUN_RETENTION_DAYS, in batches.
    "purge-old-workflow-runs": _every(3600, "integrations.tasks.purge_old_workflow_runs"),
}
