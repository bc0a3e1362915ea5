"""Queueing background jobs: by task name, once the current transaction commits.

No service imports ``integrations.tasks`` (only Celery does): services call the functions here,
which look the task up by its registered name, so the import graph stays one-way. The task's
own ``apply_async`` and ``job_send`` decide what a broker outage means (logged as a warning, never
raised: a beat sweep finds the row once the broker is back), and eager mode (no broker
configured) runs it in-process.
"""

from __future__ import annotations

import functools
import logging
import random

from celery import current_app
from django.db import transaction
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

VERIFY_CREDENTIAL = "integrations.tasks.verify_credential"
REFRESH_CREDENTIAL = "integrations.tasks.refresh_credential"
# The sweeps' batches: a list of credential ids per job (``integrations.tasks``).
VERIFY_CREDENTIALS = "integrations.tasks.verify_credentials"
REFRESH_CREDENTIALS = "integrations.tasks.refresh_credentials"
DELIVER_WEBHOOK = "integrations.tasks.deliver_webhook"
RUN_WORKFLOW = "integrations.tasks.run_workflow"

logger = logging.getLogger(__name__)

# What a broker that is down or unreachable raises from a publish (kombu wraps most of them).
BROKER_ERRORS = (KombuError, RedisError)


def job_send(name: str, *args: object, **options: object) -> None:
    """Queue the task ``name`` now (use ``job_enqueue`` inside a transaction).

    Never raises for the broker: the change that asked for the job has committed, and the row
    behind the job is found again by a sweep once the broker is back.
    """
    if name not in current_app.tasks:
        # A web process never imports the task modules; autodiscovery imports them on demand.
        current_app.loader.import_default_modules()
    try:
        current_app.tasks[name].apply_async(args, **options)
    except BROKER_ERRORS as exc:
        logger.warning("Could not queue %s%s (%s); the sweeps will pick it up.", name, args, exc)


def job_enqueue(name: str, *args: object) -> None:
    """Queue the task ``name`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(functools.partial(job_send, name, *args))


def verification_enqueue(*, credential_id: object) -> None:
    job_enqueue(VERIFY_CREDENTIAL, str(credential_id))


def webhook_delivery_enqueue(*, delivery_id: object, attempt: int) -> None:
    job_enqueue(DELIVER_WEBHOOK, str(delivery_id), attempt)


def workflow_run_enqueue(*, run_id: object) -> None:
    job_enqueue(RUN_WORKFLOW, str(run_id))


def backoff_seconds(*, attempt: int, base: float, maximum: float, jitter: float = 0.1) -> float:
    """Exponential backoff for the ``attempt``-th retry (1, 2, …), with a little jitter."""
    delay = min(base * 2 ** max(attempt - 1, 0), maximum)
    return max(0.0, delay * random.uniform(1 - jitter, 1 + jitter))  # noqa: S311
