"""The audit log: one entry for each use of a decrypted secret and each change to a credential.

``audit_record`` writes at once, in the caller's transaction (``audit_record_many`` several
entries built with ``audit_entry``, in one insert). ``audit_record_after_response``
is for an entry that is the only write of a request (a proxied call): during a request it is
kept in memory and written when the response has been handed to the server (Django's
``request_finished``), all of the request's entries in one insert; on PostgreSQL in a
transaction that does not wait for the WAL flush (``synchronous_commit off``), so the call does
not pay for a disk sync. Outside a request (a worker, a shell) it writes at once.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import connection, transaction
from django.db.models import Model
from django.dispatch import receiver

from accounts.models import AuditLogEntry, Tenant

logger = logging.getLogger(__name__)

# The entries waiting for the end of the current request; None outside a request.
_after_response: ContextVar[list[AuditLogEntry] | None] = ContextVar(
    "audit_after_response", default=None
)


@dataclass(frozen=True)
class Actor:
    """Who is acting: staff (by user id), an API key (by prefix), an end user, or the system."""

    type: str
    id: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(AuditLogEntry.ActorType.SYSTEM)

    @classmethod
    def staff(cls, user) -> Actor:
        return cls(AuditLogEntry.ActorType.STAFF, str(user.pk))

    @classmethod
    def api_key(cls, prefix: str) -> Actor:
        return cls(AuditLogEntry.ActorType.API_KEY, prefix)

    @classmethod
    def end_user(cls, end_user_id) -> Actor:
        return cls(AuditLogEntry.ActorType.END_USER, str(end_user_id))


def audit_record(
    *,
    tenant: Tenant,
    actor: Actor,
    action: str,
    credential: Model | None = None,
    outcome: str = AuditLogEntry.Outcome.SUCCESS,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        tenant=tenant,
        actor_type=actor.type,
        actor=actor.id,
        action=action,
        credential=credential,
        outcome=outcome,
        target=target or (str(credential.pk) if credential else ""),
        detail=detail or {},
    )


def audit_entry(
    *,
    tenant_id: object,
    actor: Actor,
    action: str,
    credential_id: object = None,
    outcome: str = AuditLogEntry.Outcome.SUCCESS,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """An entry not yet written: for ``audit_record_many``."""
    return AuditLogEntry(
        tenant_id=tenant_id,
        actor_type=actor.type,
        actor=actor.id,
        action=action,
        credential_id=credential_id,
        outcome=outcome,
        target=target or (str(credential_id) if credential_id else ""),
        detail=detail or {},
    )


def audit_record_many(entries: list[AuditLogEntry]) -> None:
    """Write ``entries`` at once, in the caller's transaction, in one insert."""
    AuditLogEntry.objects.bulk_create(entries)


def audit_record_after_response(
    *,
    tenant_id: int,
    actor: Actor,
    action: str,
    credential_id=None,
    outcome: str = AuditLogEntry.Outcome.SUCCESS,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an entry when the current request ends (see the module docstring)."""
    entry = audit_entry(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        credential_id=credential_id,
        outcome=outcome,
        target=target,
        detail=detail,
    )
    pending = _after_response.get()
    if pending is None:
        entry.save()
    else:
        pending.append(entry)


@receiver(request_started, dispatch_uid="audit_request_started")
def audit_request_started(**kwargs: Any) -> None:
    _after_response.set([])


@receiver(request_finished, dispatch_uid="audit_request_finished")
def audit_request_finished(**kwargs: Any) -> None:
    """Write the request's pending entries (connected to ``request_finished``)."""
    pending = _after_response.get()
    _after_response.set(None)
    if not pending:
        return
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            AuditLogEntry.objects.bulk_create(pending)
    except Exception:
        # The response is already sent: nothing to answer with, so say it loudly in the log.
        logger.exception("Could not write %d audit log entries after a response", len(pending))
