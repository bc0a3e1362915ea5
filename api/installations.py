"""The installations API: a user's instances of your flows, and the accounts they use.

An installation is named by the user and the flow. A flow installed several times for one user
(``allow_multiple``, one installation per account) is narrowed with the ``X-Portal-Credential``
header: the installation that uses that account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Field, Header, Query, Router, Schema, Status

from accounts.models import EndUser, Tenant
from api.auth import request_actor
from api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from api.schemas import JsonObject, Text, errors
from api.services import end_user_get_or_404
from core.errors import Invalid, NotFound
from integrations.models import Credential, Flow, Installation
from integrations.selectors import credential_get, flow_get, installation_list_for_end_user
from integrations.services.installations import (
    installation_install,
    installation_set_enabled,
    installation_uninstall,
    installation_update,
)

router = Router(tags=["installations"])

CREDENTIAL_HEADER = "X-Portal-Credential"
CredentialHeader = Annotated[
    str | None,
    Header(
        None,
        alias=CREDENTIAL_HEADER,
        max_length=64,
        description="A credential id: only the user's installation of the flow using this account.",
    ),
]


class InstallIn(Schema):
    flow_id: UUID
    credential_id: UUID | None = Field(
        None,
        description=(
            "The account to use for its app. On a flow already installed (without "
            "`allow_multiple`) it replaces that app's account and keeps settings and workflows."
        ),
    )
    allow_multiple: bool = Field(
        False, description="Install again for another account instead of answering 409."
    )
    settings: JsonObject | None = Field(
        None, description="Validated against the flow's settings schema; its defaults fill in."
    )

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "flow_id": "3c9a1d2e-5f6b-4a7c-8d9e-0f1a2b3c4d5e",
                    "credential_id": "0b7c6f2e-3a51-4d8e-9a43-5f0d2c7b9e11",
                    "settings": {"direction": "import", "interval_minutes": 60},
                }
            ]
        },
    }


class InstallationPatchIn(Schema):
    settings: JsonObject | None = Field(
        None, description="Replaces the settings; validated against the flow's schema."
    )
    enabled_workflows: list[Text] | None = Field(
        None, max_length=200, description="The keys of the workflows that run; others stop."
    )
    enabled: bool | None = Field(
        None, description="Switch on (only once every app of the flow has an account) or off."
    )

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {"settings": {"direction": "both"}, "enabled_workflows": ["import-contacts"]}
            ]
        },
    }


class NeedsUpdateOut(Schema):
    version: int = Field(..., description="The flow version waiting for the user.")
    apps: list[str] = Field(..., description="Apps the user must connect an account for.")
    settings: list[str] = Field(..., description="Required settings the user must fill in.")


class InstallationOut(Schema):
    id: UUID
    flow_id: UUID
    flow_name: str
    flow_version: int | None = Field(
        ..., description="The flow version it runs (null before the flow's first publication)."
    )
    needs_update: NeedsUpdateOut | None = Field(
        ...,
        description="A breaking update waiting for the end user's action; it keeps running "
        "its version until then.",
    )
    user: str = Field(..., description="Your id for the user.")
    enabled: bool
    disabled_reason: str
    settings: dict[str, Any]
    enabled_workflows: list[str]
    credentials: dict[str, UUID] = Field(
        ..., description="The account each app of the flow uses, by app slug."
    )
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_flow_name(obj: Installation) -> str:
        return obj.flow.name

    @staticmethod
    def resolve_flow_version(obj: Installation) -> int | None:
        return obj.flow_version.number if obj.flow_version else None

    @staticmethod
    def resolve_needs_update(obj: Installation) -> dict | None:
        if obj.pending_version is None:
            return None
        return {"version": obj.pending_version.number, **obj.needs_action}

    @staticmethod
    def resolve_user(obj: Installation) -> str:
        return obj.end_user.external_id

    @staticmethod
    def resolve_enabled_workflows(obj: Installation) -> list[str]:
        return sorted(workflow.key for workflow in obj.enabled_workflows.all())

    @staticmethod
    def resolve_credentials(obj: Installation) -> dict[str, UUID]:
        return {link.app.slug: link.credential_id for link in obj.credential_links.all()}


class InstallationFilters(Schema):
    flow_id: UUID | None = Field(None, description="Only installations of this flow.")


def _flow_or_404(tenant: Tenant, flow_id: UUID) -> Flow:
    flow = flow_get(tenant=tenant, flow_id=flow_id)
    if flow is None:
        raise NotFound(f"No flow {flow_id}.", code="flow_not_found")
    return flow


def _credential_or_404(tenant: Tenant, end_user: EndUser, credential_id: Any) -> Credential:
    try:
        credential_id = UUID(str(credential_id))
    except ValueError:
        raise Invalid(
            f"{CREDENTIAL_HEADER} must be a credential id (a UUID).",
            code="invalid_credential_id",
            fields={CREDENTIAL_HEADER: "Not a UUID."},
        ) from None
    credential = credential_get(tenant=tenant, credential_id=credential_id)
    if credential is None or credential.end_user_id != end_user.pk:
        raise NotFound(f"No credential {credential_id} for this user.", code="credential_not_found")
    return credential


def _fresh(installation: Installation) -> Installation:
    return installation_list_for_end_user(end_user=installation.end_user).get(pk=installation.pk)


def _the_installation(
    request: HttpRequest, external_id: Text, flow_id: UUID, credential_id: str | None
) -> Installation:
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    flow = _flow_or_404(request.tenant, flow_id)
    credential = (
        _credential_or_404(request.tenant, end_user, credential_id) if credential_id else None
    )
    installations = list(
        installation_list_for_end_user(end_user=end_user, flow=flow, credential=credential)
    )
    if not installations:
        raise NotFound(f"“{flow.name}” is not installed for this user.", code="not_installed")
    if len(installations) > 1:
        using = ", ".join(
            str(link.credential_id)
            for installation in installations
            for link in installation.credential_links.all()
        )
        raise Invalid(
            f"“{flow.name}” is installed {len(installations)} times for this user. Name the one "
            f"you mean with the {CREDENTIAL_HEADER} header (one of: {using or 'none linked'}).",
            code="ambiguous_installation",
            fields={CREDENTIAL_HEADER: "Required: several installations."},
        )
    return installations[0]


@router.post(
    "/users/{external_id}/installations",
    response={200: InstallationOut, 201: InstallationOut, **errors(404, 409, 422)},
    summary="Install a flow for a user",
    description=(
        "Installs a flow published in an active deployment. The installation is created "
        "disabled until every app of the flow has an account (the user's only active account "
        "of an app is picked when `credential_id` does not name one); then PATCH "
        "`enabled: true`. Installing an installed flow again is a 409, unless `allow_multiple` "
        "(another installation, for another account: 201) or a new `credential_id` (the account "
        "is replaced, settings and workflows stay: 200)."
    ),
    openapi_extra={"parameters": [IDEMPOTENCY_PARAMETER]},
)
@idempotent
def install(request: HttpRequest, external_id: Text, payload: InstallIn):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    flow = _flow_or_404(request.tenant, payload.flow_id)
    credential = (
        _credential_or_404(request.tenant, end_user, payload.credential_id)
        if payload.credential_id
        else None
    )
    installation, created = installation_install(
        end_user=end_user,
        flow=flow,
        credential=credential,
        allow_multiple=payload.allow_multiple,
        settings=payload.settings,
        actor=request_actor(request),
    )
    return Status(201 if created else 200, _fresh(installation))


@router.get(
    "/users/{external_id}/installations",
    response={200: list[InstallationOut], **errors(404, 422)},
    summary="List a user's installations",
)
def list_installations(
    request: HttpRequest, external_id: Text, filters: Query[InstallationFilters]
):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    flow = _flow_or_404(request.tenant, filters.flow_id) if filters.flow_id else None
    return list(installation_list_for_end_user(end_user=end_user, flow=flow))


@router.get(
    "/users/{external_id}/installations/{flow_id}",
    response={200: InstallationOut, **errors(404, 422)},
    summary="Get a user's installation of a flow",
    description=(
        f"With several installations of the flow, `{CREDENTIAL_HEADER}` names the one using "
        "that account; without it that is a 422 (`ambiguous_installation`)."
    ),
)
def get_installation(
    request: HttpRequest,
    external_id: Text,
    flow_id: UUID,
    credential_id: CredentialHeader = None,
):
    return _the_installation(request, external_id, flow_id, credential_id)


@router.patch(
    "/users/{external_id}/installations/{flow_id}",
    response={200: InstallationOut, **errors(404, 422)},
    summary="Update settings, workflows or enabled",
    description=(
        "Settings are validated against the flow's settings schema (422 naming each field). "
        "`enabled: true` needs an account for every app of the flow (422 "
        "`installation_incomplete`). All or nothing: a refused change changes nothing."
    ),
)
def update_installation(
    request: HttpRequest,
    external_id: Text,
    flow_id: UUID,
    payload: InstallationPatchIn,
    credential_id: CredentialHeader = None,
):
    installation = _the_installation(request, external_id, flow_id, credential_id)
    actor = request_actor(request)
    with transaction.atomic():
        if payload.settings is not None or payload.enabled_workflows is not None:
            installation = installation_update(
                installation=installation,
                settings=payload.settings,
                enabled_workflows=payload.enabled_workflows,
                actor=actor,
            )
        if payload.enabled is not None:
            installation = installation_set_enabled(
                installation=installation, enabled=payload.enabled, actor=actor
            )
    return _fresh(installation)


@router.delete(
    "/users/{external_id}/installations/{flow_id}",
    response={204: None, **errors(404, 422)},
    summary="Uninstall a flow",
    description=(
        f"Removes every installation of the flow for the user, or with `{CREDENTIAL_HEADER}` "
        "only the one using that account. Each sends an `installation.deleted` webhook."
    ),
)
def uninstall(
    request: HttpRequest,
    external_id: Text,
    flow_id: UUID,
    credential_id: CredentialHeader = None,
):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    flow = _flow_or_404(request.tenant, flow_id)
    credential = (
        _credential_or_404(request.tenant, end_user, credential_id) if credential_id else None
    )
    installation_uninstall(
        end_user=end_user, flow=flow, credential=credential, actor=request_actor(request)
    )
    return HttpResponse(status=204)
