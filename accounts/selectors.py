"""Reads for tenants and end users. Every read is tenant-scoped."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import EndUser, Tenant


def end_user_get(*, tenant: Tenant, external_id: str) -> EndUser | None:
    return EndUser.objects.filter(tenant=tenant, external_id=external_id).first()


def end_user_list(*, tenant: Tenant) -> QuerySet[EndUser]:
    """The tenant's end users, oldest first (the API pages through them by creation)."""
    return EndUser.objects.filter(tenant=tenant).order_by("created_at", "pk")
