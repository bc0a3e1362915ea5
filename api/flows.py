"""Flows as the tenant's server sees them: the apps each uses, its workflows (with the ids that
``POST /workflows/{id}/run`` and the trigger URLs take) and its newest version; and publishing a
new version (Tray's solution versions: installations move at once, or wait for their user).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from api.auth import request_actor
from api.pagination import PageParams, paginate
from api.schemas import JsonObject, errors
from core.errors import NotFound
from integrations.models import Flow, Workflow
from integrations.selectors import flow_get, flow_list, flow_version_installation_counts
from integrations.services.installations import flow_publish

router = Router(tags=["flows"])


class WorkflowOut(Schema):
    id: UUID = Field(..., description="The id `POST /workflows/{id}/run` takes.")
    key: str
    name: str
    description: str
    trigger: Literal["request", "url"]
    enabled: bool = Field(..., description="Switched off, it runs for no installation.")
    enabled_by_default: bool
    input_schema: JsonObject

    @staticmethod
    def resolve_id(obj: Workflow) -> UUID:
        return obj.public_id

    @staticmethod
    def resolve_enabled(obj: Workflow) -> bool:
        return obj.is_enabled


class FlowOut(Schema):
    id: UUID
    name: str
    description: str
    status: Literal["draft", "published"]
    version: int | None = Field(
        ..., description="The newest published version's number; null before the first."
    )
    apps: list[str] = Field(..., description="The slugs of the apps it uses.")
    settings_schema: JsonObject
    workflows: list[WorkflowOut]
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_version(obj: Flow) -> int | None:
        return obj.latest_version

    @staticmethod
    def resolve_apps(obj: Flow) -> list[str]:
        return sorted(app.slug for app in obj.apps.all())

    @staticmethod
    def resolve_workflows(obj: Flow) -> list[Workflow]:
        return list(obj.workflows.all())


class FlowPageOut(Schema):
    data: list[FlowOut]
    next_cursor: str | None


class PublishOut(Schema):
    flow_id: UUID
    version: int = Field(..., description="The new version's number.")
    moved: int = Field(
        ..., description="Installations moved to it at once (a lazy update: nothing new needed)."
    )
    needs_update: int = Field(
        ...,
        description="Installations that stay on their version until their user connects the "
        "new app or fills the new required setting (`installation.needs_update` was sent).",
    )


@router.get(
    "/flows",
    response={200: FlowPageOut, **errors(422)},
    summary="List flows with their workflows",
    description="Your flows, oldest first, a page at a time (cursor pagination).",
)
def list_flows(request: HttpRequest, page: Query[PageParams]):
    result = paginate(flow_list(tenant=request.tenant), cursor=page.cursor, limit=page.limit)
    return {"data": result.items, "next_cursor": result.next_cursor}


def _flow_or_404(request: HttpRequest, flow_id: UUID) -> Flow:
    flow = flow_get(tenant=request.tenant, flow_id=flow_id)
    if flow is None:
        raise NotFound(f"No flow {flow_id}.", code="flow_not_found")
    return flow


@router.get(
    "/flows/{flow_id}",
    response={200: FlowOut, **errors(404, 422)},
    summary="Get a flow with its workflows",
)
def get_flow(request: HttpRequest, flow_id: UUID):
    flow = flow_list(tenant=request.tenant).filter(pk=flow_id).first()
    if flow is None:
        raise NotFound(f"No flow {flow_id}.", code="flow_not_found")
    return flow


@router.post(
    "/flows/{flow_id}/publish",
    response={201: PublishOut, **errors(404, 422)},
    summary="Publish a new version of a flow",
    description=(
        "Freezes the flow (its apps, settings schema and every workflow's definition) as its "
        "next version and marks it published. Each installation moves to the new version at "
        "once when it needs nothing new (`installation.updated`); one that lacks an account for "
        "a new app or a value for a new required setting stays on its version, runs it, and "
        "waits for its user (`installation.needs_update`; the modal shows what is missing). "
        "A workflow that could not run with the flow as it is now (a step calling an app since "
        "removed from the flow) refuses the publish: 422 `workflow_invalid`, naming it."
    ),
)
def publish_flow(request: HttpRequest, flow_id: UUID):
    flow = _flow_or_404(request, flow_id)
    version = flow_publish(flow=flow, actor=request_actor(request))
    moved, waiting = flow_version_installation_counts(version=version)
    return Status(
        201,
        {"flow_id": flow.pk, "version": version.number, "moved": moved, "needs_update": waiting},
    )
