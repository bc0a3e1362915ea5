"""What changes a tenant's app catalog: every write that changes which apps its modal lists, or
how they show, replaces the tenant's ``catalog_version``.

The modal caches its rendered app catalog under a key that holds this version
(``connect/app_list.py``), so a write makes every cached copy unreachable at once, in every
process, whatever the cache backend does. The version lives in the tenant's row, not in the
cache: it is read with the connect session (no extra query), it changes in the transaction of
the write that moved it (no reader sees the new rows under the old version once both have
committed), and a Redis outage cannot lose it (each process's fallback cache would otherwise
keep its own, stale, copy of a version held in the cache).

Receivers, not calls from each service: the catalog is written by services, the admin's
forms and inlines, the catalog loader and the demo seed, and a missed call would show a stale
list. These model signals see every ``save()``, ``delete()`` and many-to-many change of:

- App (a catalog app, shared by every tenant, moves every tenant's version), its OAuth clients;
- Flow (status, publish) and its apps; Deployment (active or not) and its flows;
- Tenant (its own app is never listed; any save also guards against a full save writing back
  a version read before another write moved it);
- a connect session's app allowlist.

A queryset ``update()`` or ``bulk_create()`` on these models sends no signal: code that uses
one must call ``catalog_changed`` itself (none does today; ``tests/connect/test_app_list_cache.py``
covers the writes that exist).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from contextlib import contextmanager

from django.apps import AppConfig, apps
from django.db.models.signals import m2m_changed, post_delete, post_save

# The models are looked up in the registry, not imported: this module is imported by
# integrations/apps.py, before the models can be.


_batch = threading.local()


@contextmanager
def catalog_changes_batched():
    """Inside it, writes only note which tenants changed; one update moves them all at the end
    (the catalog loader saves many catalog apps, each of which would update every tenant)."""
    if getattr(_batch, "pending", None) is not None:  # already batching: the outer one moves
        yield
        return
    _batch.pending = set()
    try:
        yield
        pending = _batch.pending
    finally:
        _batch.pending = None
    if pending:
        catalog_changed(tenant_ids=None if ALL in pending else pending)


ALL = object()


def catalog_changed(*, tenant_ids: Iterable | None) -> None:
    """Replace the catalog version of these tenants (of every tenant when None)."""
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending.update([ALL] if tenant_ids is None else tenant_ids)
        return
    tenants = apps.get_model("accounts", "Tenant").objects.all()
    if tenant_ids is not None:
        ids = {tenant_id for tenant_id in tenant_ids if tenant_id is not None}
        if not ids:
            return
        tenants = tenants.filter(pk__in=ids)
    tenants.update(catalog_version=uuid.uuid4())


def _app_written(sender, instance, **kwargs) -> None:
    # A catalog app (no tenant) is listed by every tenant that uses it.
    catalog_changed(tenant_ids=[instance.tenant_id] if instance.tenant_id else None)


def _tenant_row_written(sender, instance, **kwargs) -> None:
    catalog_changed(tenant_ids=[instance.tenant_id])


def _tenant_saved(sender, instance, **kwargs) -> None:
    catalog_changed(tenant_ids=[instance.pk])


def _flow_apps_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if not reverse:  # flow.apps.add(...): instance is the flow
        catalog_changed(tenant_ids=[instance.tenant_id])
    elif pk_set:  # app.flows.add(...): the flows' tenants
        flows = apps.get_model("integrations", "Flow").objects.filter(pk__in=pk_set)
        catalog_changed(tenant_ids=flows.values_list("tenant_id", flat=True))
    else:  # app.flows.clear(): its flows are gone already; every tenant, to be sure
        catalog_changed(tenant_ids=None)


def _deployment_flows_changed(sender, instance, action: str, **kwargs) -> None:
    # Both ends (deployment.flows, flow.deployments) belong to one tenant: the instance's.
    if action.startswith("post_"):
        catalog_changed(tenant_ids=[instance.tenant_id])


def _session_apps_changed(sender, instance, action: str, **kwargs) -> None:
    # Only session.apps exists (the app side has no related manager): instance is the session.
    if action.startswith("post_"):
        catalog_changed(tenant_ids=[instance.tenant_id])


def connect_catalog_signals(integrations: AppConfig) -> None:
    """Called once, from ``IntegrationsConfig.ready``."""
    model = integrations.get_model
    for sender, receiver in (
        (model("App"), _app_written),
        (model("Flow"), _tenant_row_written),
        (model("Deployment"), _tenant_row_written),
        (model("TenantOAuthClient"), _tenant_row_written),
    ):
        uid = f"catalog_changes_{sender.__name__}"
        post_save.connect(receiver, sender=sender, dispatch_uid=f"{uid}_save")
        post_delete.connect(receiver, sender=sender, dispatch_uid=f"{uid}_delete")
    post_save.connect(
        _tenant_saved,
        sender=apps.get_model("accounts", "Tenant"),
        dispatch_uid="catalog_changes_Tenant_save",
    )
    for through, receiver in (
        (model("Flow").apps.through, _flow_apps_changed),
        (model("Deployment").flows.through, _deployment_flows_changed),
        (model("ConnectSession").apps.through, _session_apps_changed),
    ):
        m2m_changed.connect(
            receiver, sender=through, dispatch_uid=f"catalog_changes_{through.__name__}"
        )
