"""The audit log: one entry for each use of a decrypted secret and each change to a credential.

``audit_record`` writes at once, in the caller's transaction (``audit_record_many`` several
entries built with ``audit_entry``, in one insert). ``audit_record_after_response``
is for an entry that is the only write of a request (a proxied call): during a request it is
kept in memory and written when the response has been handed to the server, all of the
request's entries in one insert. Outside a request (a worker, a shell) it writes at once.

After the response, on PostgreSQL, the write is one round trip: ``SET LOCAL synchronous_commit
TO OFF; INSERT …`` sent as one simple query, which PostgreSQL runs as one implicit transaction,
so the call pays neither a separate BEGIN/COMMIT nor a wait for the WAL flush. What that costs
in durability: the row is committed and visible at once and survives a normal shutdown or a
restart of the portal, but a crash of PostgreSQL itself (or of its machine) within about
three times ``wal_writer_delay`` (0.6 s by default) of the commit can lose it. Rows are kept in
the portal's memory only between the answer and this write, within the same request, so a
normal stop of a worker (which finishes its request) loses none; a worker killed in that
instant loses its one request's entries. A failed write is logged as an error.

``audit_flush_after_response`` is the write; ``request_finished`` calls it for every request.
A view that knows it leaves entries (the proxy) hands it to its response as a closer, so it
runs before Django's ``close_old_connections`` (also on ``request_finished``) marks the
connection for a new health check: the write then reuses the connection the request checked,
without a ``SELECT 1`` of its own.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Model
from django.dispatch import receiver

from accounts.models import AuditLogEntry, Tenant
from core.writes import rows_insert

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
    """Write ``entries`` at once, in the caller's transaction, in one insert (built once per
    number of entries: every verification and refresh writes one)."""
    rows_insert(entries)


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


_INSERT = "SET LOCAL synchronous_commit TO OFF; INSERT INTO {table} ({columns}) VALUES {rows}"


def _one_round_trip() -> bool:
    """PostgreSQL with client-side parameter binding (Django's default), which sends a query
    with several statements as one simple query."""
    return connection.vendor == "postgresql" and not connection.settings_dict.get(
        "OPTIONS", {}
    ).get("server_side_binding")


def _write(pending: list[AuditLogEntry]) -> None:
    if not _one_round_trip():
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            AuditLogEntry.objects.bulk_create(pending)
        return
    # Every column but the generated id, each value prepared by its field, as bulk_create does.
    fields = [
        field
        for field in AuditLogEntry._meta.concrete_fields
        if not (field.primary_key and field.db_returning)
    ]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = _INSERT.format(
        table=connection.ops.quote_name(AuditLogEntry._meta.db_table),
        columns=", ".join(connection.ops.quote_name(field.column) for field in fields),
        rows=", ".join([row] * len(pending)),
    )
    params = [
        field.get_db_prep_save(getattr(entry, field.attname), connection)
        for entry in pending
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def audit_flush_after_response() -> None:
    """Write the current request's pending entries in one statement (see the module docstring).

    Called by ``request_finished`` and by a response's closer; the second call finds nothing.
    """
    pending = _after_response.get()
    if not pending:
        return
    _after_response.set([])
    try:
        try:
            _write(pending)
        except (OperationalError, InterfaceError):
            # The connection the request checked may have died while the upstream answered (a
            # failover, an idle-session timeout): once more, on a new connection.
            connection.close()
            _write(pending)
    except Exception:
        # The response is already sent: nothing to answer with, so say it loudly in the log.
        logger.exception(
            "Could not write %d audit log entries after a response (%s)",
            len(pending),
            ", ".join(sorted({entry.action for entry in pending})),
        )


@receiver(request_finished, dispatch_uid="audit_request_finished")
def audit_request_finished(**kwargs: Any) -> None:
    """Write the request's pending entries (connected to ``request_finished``)."""
    audit_flush_after_response()
    _after_response.set(None)
