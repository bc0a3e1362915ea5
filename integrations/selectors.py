"""Reads for the app catalog, flows and deployments. Every read is tenant-scoped."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Exists, Q, QuerySet

from accounts.models import ConnectSession, Credential, Tenant
from integrations.models import App, Deployment, Flow


def app_list_offered(
    *,
    tenant: Tenant,
    deployment: Deployment | None = None,
    allowlist: QuerySet[App] | list[int] | None = None,
) -> QuerySet[App]:
    """The apps a tenant's end users may connect (DESIGN.md's rules), in one query.

    Listed when: not the tenant's own app; used by a published flow inside an active deployment
    of the tenant (inside ``deployment`` when given); on the allowlist when there is one.
    """
    flows = Flow.objects.filter(
        tenant=tenant, status=Flow.Status.PUBLISHED, deployments__is_active=True
    )
    if deployment is not None:
        flows = flows.filter(deployments=deployment)
    apps = App.objects.filter(
        Q(tenant__isnull=True) | Q(tenant=tenant),
        is_enabled=True,
        pk__in=flows.values("apps"),
    )
    if tenant.own_app_id is not None:
        apps = apps.exclude(pk=tenant.own_app_id)
    if allowlist is not None:
        apps = apps.filter(pk__in=allowlist)
    return apps.order_by("name", "pk")


def app_list_for_session(*, session: ConnectSession) -> QuerySet[App]:
    """The apps a connect session offers: its deployment and its allowlist narrow the tenant's.

    An empty allowlist means no restriction; both cases are answered by the same single query.
    """
    allowlist = ConnectSession.apps.through.objects.filter(connectsession_id=session.pk)
    return app_list_offered(tenant=session.tenant, deployment=session.deployment).filter(
        ~Exists(allowlist) | Q(pk__in=allowlist.values("app_id"))
    )


@dataclass
class OfferedApp:
    app: App
    credentials: list[Credential] = field(default_factory=list)


def offered_apps_with_credentials(*, session: ConnectSession) -> list[OfferedApp]:
    """The session's apps, each with the end user's accounts for it, in a fixed query count."""
    apps = list(app_list_for_session(session=session))
    by_app: dict[int, list[Credential]] = defaultdict(list)
    credentials = Credential.objects.filter(
        tenant_id=session.tenant_id,
        end_user_id=session.end_user_id,
        app_id__in=[app.pk for app in apps],
    ).order_by("created_at")
    for credential in credentials:
        by_app[credential.app_id].append(credential)
    return [OfferedApp(app=app, credentials=by_app[app.pk]) for app in apps]
