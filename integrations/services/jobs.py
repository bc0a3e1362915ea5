"""Queueing background jobs: by task name, once the current transaction commits.

No service imports ``integrations.tasks`` (only Celery does): services call the functions here,
which look the task up by its registered name, so the import graph stays one-way. The task's
own ``apply_async`` decides what a broker outage means (``PortalTask``: logged, and a beat sweep
finds the row later), and eager mode (no broker configured) runs it in-process.
"""

from __future__ import annotations

import functools
import random

from celery import current_app
from django.db import transaction

VERIFY_CREDENTIAL = "integrations.tasks.verify_credential"
REFRESH_CREDENTIAL = "integrations.tasks.refresh_credential"
DELIVER_WEBHOOK = "integrations.tasks.deliver_webhook"


def job_send(name: str, *args: object) -> None:
    """Queue the task ``name`` now (use ``job_enqueue`` inside a transaction)."""
    current_app.tasks[name].delay(*args)


def job_enqueue(name: str, *args: object) -> None:
    """Queue the task ``name`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(functools.partial(job_send, name, *args))


def verification_enqueue(*, credential_id: object) -> None:
    job_enqueue(VERIFY_CREDENTIAL, str(credential_id))


def webhook_delivery_enqueue(*, delivery_id: object, attempt: int) -> None:
    job_enqueue(DELIVER_WEBHOOK, str(delivery_id), attempt)


def backoff_seconds(*, attempt: int, base: float, maximum: float, jitter: float = 0.1) -> float:
    """Exponential backoff for the ``attempt``-th retry (1, 2, …), with a little jitter."""
    delay = min(base * 2 ** max(attempt - 1, 0), maximum)
    return max(0.0, delay * random.uniform(1 - jitter, 1 + jitter))  # noqa: S311
