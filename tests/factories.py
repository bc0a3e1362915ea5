"""Test data built the way the product builds it: through services where they exist."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils.text import slugify

from accounts.models import EndUser, Tenant
from core.vault import seal_secret
from integrations.models import App, Credential, Deployment, Flow, Workflow
from integrations.services.workflows import workflow_save

_counter = itertools.count(1)


def make_tenant(*, name: str = "Tenant", **extra: Any) -> Tenant:
    n = next(_counter)
    return Tenant.objects.create(name=name, slug=f"{slugify(name)}-{n}", **extra)


def make_end_user(*, tenant: Tenant, external_id: str | None = None, **extra: Any) -> EndUser:
    return EndUser.objects.create(
        tenant=tenant, external_id=external_id or f"user-{next(_counter)}", **extra
    )


def make_api_key_app(*, slug: str | None = None, tenant: Tenant | None = None, **extra: Any) -> App:
    slug = slug or f"keyapp-{next(_counter)}"
    values: dict[str, Any] = {
        "name": slug.replace("-", " ").title(),
        "auth_type": App.AuthType.API_KEY,
        "fields": [{"name": "api_key", "label": "API key", "secret": True, "required": True}],
        "auth_scheme": {"in": "header", "name": "X-API-Key", "template": "{api_key}"},
        "api_base_url": "https://api.example.com",
        "verification": {"path": "/me", "identity": ["email"]},
    }
    values.update(extra)
    app = App(slug=slug, tenant=tenant, **values)
    app.full_clean()
    app.save()
    return app


def make_oauth_app(*, slug: str | None = None, tenant: Tenant | None = None, **extra: Any) -> App:
    slug = slug or f"oauthapp-{next(_counter)}"
    values: dict[str, Any] = {
        "name": slug.replace("-", " ").title(),
        "auth_type": App.AuthType.OAUTH2,
        "authorization_url": "https://provider.example.com/authorize",
        "token_url": "https://provider.example.com/token",
        "scopes": ["profile"],
        "auth_scheme": {
            "in": "header",
            "name": "Authorization",
            "template": "Bearer {access_token}",
        },
        "api_base_url": "https://provider.example.com/api",
        "verification": {"path": "/me", "identity": ["email"]},
    }
    values.update(extra)
    app = App(slug=slug, tenant=tenant, **values)
    app.full_clean()
    app.save()
    return app


def make_flow(
    *,
    tenant: Tenant,
    apps: list[App],
    published: bool = True,
    name: str | None = None,
    **extra: Any,
) -> Flow:
    flow = Flow.objects.create(
        tenant=tenant,
        name=name or f"Flow {next(_counter)}",
        status=Flow.Status.PUBLISHED if published else Flow.Status.DRAFT,
        **extra,
    )
    flow.apps.set(apps)
    return flow


def make_deployment(
    *, tenant: Tenant, flows: list[Flow], active: bool = True, name: str | None = None
) -> Deployment:
    deployment = Deployment.objects.create(
        tenant=tenant, name=name or f"Deployment {next(_counter)}", is_active=active
    )
    deployment.flows.set(flows)
    return deployment


def make_credential(
    *,
    end_user: EndUser,
    app: App,
    secret: dict[str, Any] | None = None,
    status: str = Credential.Status.ACTIVE,
    **extra: Any,
) -> Credential:
    credential = Credential(
        tenant=end_user.tenant, end_user=end_user, app=app, status=status, **extra
    )
    seal_secret(credential, secret or {"api_key": f"secret-{next(_counter)}"})
    credential.save()
    return credential


def make_workflow(
    *,
    flow: Flow,
    steps: list[dict[str, Any]],
    response: Any = None,
    key: str | None = None,
    **extra: Any,
) -> Workflow:
    """A workflow saved as the admin saves one: its definition checked first."""
    key = key or f"workflow-{next(_counter)}"
    workflow = Workflow(
        flow=flow,
        key=key,
        name=extra.pop("name", key.replace("-", " ").title()),
        steps=steps,
        response=response if response is not None else {},
        **extra,
    )
    return workflow_save(workflow=workflow)
