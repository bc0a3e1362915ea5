"""The audit log: one entry for each use of a decrypted secret and each change to a credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Model

from accounts.models import AuditLogEntry, Tenant


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
