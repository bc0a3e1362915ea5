"""The API's periodic job: expired idempotency keys are deleted, in batches."""

from __future__ import annotations

from celery import shared_task

from api.idempotency import idempotency_keys_purge_expired


@shared_task(acks_late=True)
def purge_idempotency_keys() -> int:
    """Safe to run at any time and twice: it only deletes keys past their expiry."""
    return idempotency_keys_purge_expired()
