"""Workflows and their runs (Paragon's ``workflow`` and Task History).

``POST /workflows/{id}/run`` runs a workflow for the installation that uses the account named
by ``X-Portal-Credential`` (or the user's only installation of the flow, ``X-Portal-User``), and
answers the workflow's mapped response; ``async: true`` queues it and answers 202 with the run.
``GET /runs`` and ``GET /runs/{id}`` show the history, with the credential used for each app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from ninja import Field, Header, Query, Router, Schema, Status

from api.auth import request_actor
from api.errors import error_response
from api.pagination import PageParams, paginate
from api.schemas import JsonObject, Text, errors
from api.services import end_user_get_or_404
from core.errors import Invalid, NotFound
from integrations.models import WorkflowRun
from integrations.selectors import credential_get, workflow_run_get, workflow_run_list
from integrations.services.workflow_runs import (
    workflow_get_or_404,
    workflow_installation_choose,
    workflow_run_create,
    workflow_run_enqueue_new,
    workflow_run_execute,
)
from integrations.services.workflow_triggers import workflow_trigger_issue, workflow_trigger_url

router = Router(tags=["workflows"])

CREDENTIAL_HEADER = "X-Portal-Credential"
USER_HEADER = "X-Portal-User"
RUN_HEADER = "X-Portal-Run"
RunStatus = Literal["queued", "running", "succeeded", "failed"]
# A failed run answers with the status that says whose fault it was: the upstream's (502, 504
# past the time limit), the caller's input (422), or ours (500).
FAILURE_STATUSES = {
    "workflow_timeout": 504,
    "upstream_timeout": 504,
    "invalid_step_input": 422,
    "invalid_proxy_path": 422,
    "rendered_too_large": 422,
    "internal_error": 500,
}


class RunIn(Schema):
    input: JsonObject = Field(
        default_factory=dict, description="The trigger input; checked against the input schema."
    )
    run_async: bool = Field(
        False,
        alias="async",
        description="Queue the run and answer 202 with it instead of waiting for the response.",
    )

    model_config = {
        "extra": "forbid",
        "populate_by_name": True,
        "json_schema_extra": {"examples": [{"input": {"title": "Call Ada back"}}]},
    }


class RunStepOut(Schema):
    position: int
    name: str
    app: str = Field(..., description="The app's slug.")
    credential_id: UUID | None
    method: str
    path: str
    status_code: int | None = Field(..., description="The app's answer; null if none came.")
    duration_ms: int
    response_excerpt: str = Field(
        ..., description="The start of the app's answer, with the account's secrets redacted."
    )
    error_code: str
    error_message: str

    @staticmethod
    def resolve_app(obj) -> str:
        return obj.app_slug


class RunOut(Schema):
    id: UUID
    workflow_id: UUID
    workflow_key: str
    flow_id: UUID
    flow_version: int | None
    installation_id: UUID | None
    user: str | None = Field(..., description="Your id for the user.")
    credentials: dict[str, UUID] = Field(
        ..., description="The credential used for each app the workflow calls, by app slug."
    )
    trigger: Literal["request", "url", "rerun"]
    status: RunStatus
    error_code: str
    error_message: str
    failed_step: str = Field(..., description="The step that failed (`response` for the mapping).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_workflow_id(obj: WorkflowRun) -> UUID:
        return obj.workflow.public_id

    @staticmethod
    def resolve_workflow_key(obj: WorkflowRun) -> str:
        return obj.workflow.key

    @staticmethod
    def resolve_flow_id(obj: WorkflowRun) -> UUID:
        return obj.workflow.flow_id

    @staticmethod
    def resolve_user(obj: WorkflowRun) -> str | None:
        return obj.end_user.external_id if obj.end_user else None

    @staticmethod
    def resolve_credentials(obj: WorkflowRun) -> dict[str, UUID]:
        return {link.app_slug: link.credential_id for link in obj.credentials_used.all()}


class RunDetailOut(RunOut):
    input: dict[str, Any]
    output: Any = Field(None, description="The mapped response (secrets redacted).")
    steps: list[RunStepOut]

    @staticmethod
    def resolve_steps(obj: WorkflowRun) -> list:
        return list(obj.steps.all())


class RunPageOut(Schema):
    data: list[RunOut]
    next_cursor: str | None = Field(..., description="Pass as `cursor` for the next page.")


class RunFilters(PageParams):
    user: Text | None = Field(None, max_length=255, description="Only this user's runs (your id).")
    workflow: UUID | None = Field(None, description="Only this workflow's runs.")
    credential: UUID | None = Field(None, description="Only runs that used this credential.")
    status: RunStatus | None = Field(None, description="Only runs in this status.")


# Declared like the proxy's: a non-nullable string that is a UUID, read from the request's headers
# (a typed ``UUID | None`` header would be documented as nullable, a plain string as any text).
CREDENTIAL_PARAMETER = {
    "in": "header",
    "name": CREDENTIAL_HEADER,
    "required": False,
    "description": "The credential id: the installation of the flow that uses this account.",
    "schema": {"type": "string", "format": "uuid"},
}
UserHeader = Annotated[
    str | None,
    Header(
        None,
        alias=USER_HEADER,
        max_length=255,
        description="Your id for the user, when they have one installation of the flow.",
    ),
]

RUN_DESCRIPTION = f"""
Runs the workflow for one installation of its flow: the one using the account named by
`{CREDENTIAL_HEADER}`, or the user's only installation (`{USER_HEADER}`). The installation and
the workflow must be enabled, and each app the workflow calls must have a usable account;
otherwise 422 with a code naming the reason (`workflow_disabled`, `installation_disabled`,
`workflow_disabled_for_installation`, `credential_expired`, `credential_revoked`, ...).

Each step is sent like a proxy request, as that account. The answer is the workflow's mapped
response (200, its run id in `{RUN_HEADER}`). A failed step answers in the error shape with
`fields.step` naming it and `fields.run_id`: 502 when the app answered an error, 504 past the
time limit (a value a template needs missing: `template_value_missing`, 502), 422 when the
input made the step impossible (`invalid_step_input`: a path value that is not one segment, a
header value with a line break; `rendered_too_large`). With
`"async": true` the run is queued and the answer is 202 with the run; follow it with
`GET /runs/{{id}}` or the `workflow_run.succeeded` / `workflow_run.failed` webhooks.
"""


@router.post(
    "/workflows/{workflow_id}/run",
    response={202: RunOut, **errors(404, 422, 500, 502, 504)},
    summary="Run a workflow as a connected account",
    description=RUN_DESCRIPTION,
    openapi_extra={
        "parameters": [CREDENTIAL_PARAMETER],
        "responses": {
            "200": {
                "description": "The workflow's mapped response.",
                "headers": {
                    RUN_HEADER: {
                        "description": "The run's id.",
                        "schema": {"type": "string", "format": "uuid"},
                    }
                },
                "content": {"application/json": {"schema": {}}},
            }
        },
    },
)
def run_workflow(
    request: HttpRequest,
    workflow_id: UUID,
    payload: RunIn,
    user: UserHeader = None,
):
    workflow = workflow_get_or_404(tenant=request.tenant, workflow_id=workflow_id)
    installation = workflow_installation_choose(
        workflow=workflow,
        credential_id=request.headers.get(CREDENTIAL_HEADER),
        user_external_id=user,
    )
    if payload.run_async:
        run = workflow_run_enqueue_new(
            workflow=workflow,
            installation=installation,
            trigger=WorkflowRun.Trigger.REQUEST,
            data=payload.input,
        )
        return Status(202, workflow_run_get(tenant=request.tenant, run_id=run.pk))
    if workflow.trigger != workflow.Trigger.REQUEST:
        raise Invalid(
            f"The workflow “{workflow.name}” runs from its trigger URL; run it here with "
            '`"async": true`.',
            code="wrong_trigger",
        )
    run = workflow_run_create(
        workflow=workflow,
        installation=installation,
        trigger=WorkflowRun.Trigger.REQUEST,
        data=payload.input,
    )
    run = workflow_run_execute(run_id=run.pk, actor=request_actor(request))
    if run.status == WorkflowRun.Status.SUCCEEDED:
        response = JsonResponse(run.output, safe=False)
    else:
        fields = {"run_id": str(run.pk)}
        if run.failed_step:
            fields["step"] = run.failed_step
        status = FAILURE_STATUSES.get(run.error_code, 422 if not run.failed_step else 502)
        response = error_response(status, run.error_code, run.error_message, fields)
    response[RUN_HEADER] = str(run.pk)
    return response


@router.get(
    "/runs",
    response={200: RunPageOut, **errors(404, 422)},
    summary="List workflow runs",
    description="The run history, oldest first, a page at a time (cursor pagination).",
)
def list_runs(request: HttpRequest, filters: Query[RunFilters]):
    end_user = (
        end_user_get_or_404(tenant=request.tenant, external_id=filters.user)
        if filters.user
        else None
    )
    workflow = (
        workflow_get_or_404(tenant=request.tenant, workflow_id=filters.workflow)
        if filters.workflow
        else None
    )
    if (
        filters.credential
        and credential_get(tenant=request.tenant, credential_id=filters.credential) is None
    ):
        raise NotFound(f"No credential {filters.credential}.", code="credential_not_found")
    runs = workflow_run_list(
        tenant=request.tenant,
        end_user=end_user,
        workflow=workflow,
        credential_id=filters.credential,
        status=filters.status,
    )
    page = paginate(runs, cursor=filters.cursor, limit=filters.limit)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.get(
    "/runs/{run_id}",
    response={200: RunDetailOut, **errors(404, 422)},
    summary="Get a workflow run with its steps",
)
def get_run(request: HttpRequest, run_id: UUID):
    run = workflow_run_get(tenant=request.tenant, run_id=run_id)
    if run is None:
        raise NotFound("No run with this id.", code="run_not_found")
    return run


class TriggerUrlOut(Schema):
    url: str = Field(
        ..., description="The secret trigger URL: shown this once; GET or POST it to run."
    )
    workflow_id: UUID
    installation_id: UUID
    created_at: datetime
    rotated_at: datetime | None


@router.post(
    "/workflows/{workflow_id}/trigger_url",
    response={201: TriggerUrlOut, **errors(404, 422)},
    summary="Issue or rotate an installation's trigger URL",
    openapi_extra={"parameters": [CREDENTIAL_PARAMETER]},
    description=(
        "For a URL-triggered workflow: issues the secret trigger URL of the installation using "
        f"the account named by `{CREDENTIAL_HEADER}` (or the user's only installation, "
        f"`{USER_HEADER}`), or rotates it (the previous URL stops working at once). The URL "
        "holds 256 random bits, is stored only hashed and is shown in this answer only. A GET "
        "or POST to it queues a run and answers 202 with the run id; a disabled installation "
        "or workflow, or an expired or revoked account, is refused naming the reason."
    ),
)
def issue_trigger_url(
    request: HttpRequest,
    workflow_id: UUID,
    user: UserHeader = None,
):
    workflow = workflow_get_or_404(tenant=request.tenant, workflow_id=workflow_id)
    installation = workflow_installation_choose(
        workflow=workflow,
        credential_id=request.headers.get(CREDENTIAL_HEADER),
        user_external_id=user,
    )
    trigger, token = workflow_trigger_issue(workflow=workflow, installation=installation)
    response = Status(
        201,
        {
            "url": workflow_trigger_url(token),
            "workflow_id": workflow.public_id,
            "installation_id": installation.pk,
            "created_at": trigger.created_at,
            "rotated_at": trigger.rotated_at,
        },
    )
    return response
