"""The apps API: the apps your flows use, and whether your end users can connect each one."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema

from api.schemas import NotConnectableOut, errors, not_connectable_fields
from core.conf import conf
from integrations.icons import app_icon
from integrations.selectors import app_connectability, app_list_offered, app_list_used_by_flows

router = Router(tags=["apps"])


def _absolute(url: str) -> str | None:
    if not url:
        return None
    return url if url.startswith("https://") else conf.BASE_URL + url


class AppOut(Schema):
    slug: str
    name: str
    auth_type: Literal["oauth2", "api_key", "basic"]
    custom: bool = Field(..., description="One of your own apps rather than the catalog's.")
    logo_url: str | None = Field(
        ..., description="The app's logo; `null` when the modal shows a monogram instead."
    )
    offered: bool = Field(
        ...,
        description="Listed in the modal now: connectable, and used by a published flow in an "
        "active deployment (a session's deployment and `apps` may narrow it further).",
    )
    connectable: bool
    not_connectable: NotConnectableOut | None = Field(
        ..., description="Why end users cannot connect the app; `null` when they can."
    )


class AppListOut(Schema):
    data: list[AppOut]


@router.get(
    "/apps",
    response={200: AppListOut, **errors()},
    summary="List the apps your flows use",
    description=(
        "Every app a flow of yours uses (draft or published), by name, with whether your end "
        "users can connect it. An app that is not connectable (an OAuth2 app without your OAuth "
        "client, or a disabled app) is never offered in the modal; `not_connectable` says why."
    ),
)
def list_apps(request: HttpRequest):
    tenant = request.tenant
    apps = list(app_list_used_by_flows(tenant=tenant))
    found = app_connectability(tenant=tenant, apps=apps)
    offered = set(app_list_offered(tenant=tenant).values_list("pk", flat=True))
    return {
        "data": [
            {
                "slug": app.slug,
                "name": app.name,
                "auth_type": app.auth_type,
                "custom": app.tenant_id is not None,
                "logo_url": _absolute(app_icon(app).url),
                "offered": app.pk in offered,
                **not_connectable_fields(found[app.pk]),
            }
            for app in apps
        ]
    }
