"""Reads for tenants and end users. Every read is tenant-scoped."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from accounts.models import AuditLogEntry, EndUser, Tenant, TenantApiKey
from core.validators import is_uuid


def end_user_get(*, tenant: Tenant, external_id: str) -> EndUser | None:
    return EndUser.objects.filter(tenant=tenant, external_id=external_id).first()


def end_user_list(*, tenant: Tenant) -> QuerySet[EndUser]:
    """The tenant's end users, oldest first (the API pages through them by creation)."""
    return EndUser.objects.filter(tenant=tenant).order_by("created_at", "pk")


def audit_actor_names(
    *, entries: Iterable[AuditLogEntry], tenant_ids: Iterable | None = None
) -> dict[tuple[str, str], str]:
    """Who did it, readably, for each (actor_type, actor) of ``entries``: a staff member's name
    and email, an end user's name and external id, an API key's name, or the system.

    Three queries at most, however many entries: one per kind of actor that appears. End
    users and API keys are looked up only in ``tenant_ids`` when given (the entries' tenants).
    """
    wanted: dict[str, set[str]] = {}
    for entry in entries:
        wanted.setdefault(entry.actor_type, set()).add(entry.actor)
    names: dict[tuple[str, str], str] = {}
    Type = AuditLogEntry.ActorType
    for actor in wanted.get(Type.SYSTEM, ()):
        names[(Type.SYSTEM, actor)] = "System (background job)"
    staff_ids = [actor for actor in wanted.get(Type.STAFF, ()) if actor.isdigit()]
    for user in get_user_model().objects.filter(pk__in=staff_ids):
        full_name = user.get_full_name()
        email = user.email or user.get_username()
        names[(Type.STAFF, str(user.pk))] = f"{full_name} <{email}>" if full_name else email
    scope = {} if tenant_ids is None else {"tenant_id__in": list(tenant_ids)}
    if prefixes := wanted.get(Type.API_KEY):
        for key in TenantApiKey.objects.filter(prefix__in=prefixes, **scope):
            names[(Type.API_KEY, key.prefix)] = f"API key “{key.name}” ({key.prefix}…)"
    end_user_ids = [actor for actor in wanted.get(Type.END_USER, ()) if is_uuid(actor)]
    for end_user in EndUser.objects.filter(pk__in=end_user_ids, **scope):
        names[(Type.END_USER, str(end_user.pk))] = end_user_display(end_user)
    for actor_type, actors in wanted.items():
        for actor in actors:
            names.setdefault((actor_type, actor), _unknown_actor(actor_type, actor))
    return names


def end_user_display(end_user: EndUser) -> str:
    """An end user as staff know them: their name (or email) and the tenant's id for them."""
    name = end_user.name or end_user.email
    return f"{name} ({end_user.external_id})" if name else end_user.external_id


def _unknown_actor(actor_type: str, actor: str) -> str:
    # Deleted since (a staff account, an end user) or never known: say what kind it was.
    known = actor_type in AuditLogEntry.ActorType.values
    label = AuditLogEntry.ActorType(actor_type).label if known else actor_type
    return f"{label} (deleted)" if actor else label
