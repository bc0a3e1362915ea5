"""Celery tasks: each takes ids, re-reads, calls a service, and owns its retries."""

from __future__ import annotations

from celery import shared_task

from integrations.services.verification import credential_verify

VERIFY_MAX_RETRIES = 8


@shared_task(bind=True, acks_late=True, max_retries=VERIFY_MAX_RETRIES)
def verify_credential(self, credential_id: str) -> str:
    """Verify one credential; a provider that is down or busy is retried with backoff."""
    outcome = credential_verify(credential_id=credential_id)
    if outcome.kind == "unavailable" and self.request.retries < self.max_retries:
        countdown = outcome.retry_after or min(30 * 2**self.request.retries, 3600)
        if not self.request.is_eager:
            raise self.retry(countdown=countdown)
    return outcome.kind
