"""The credentials API (Alloy's): list, read, create for API-key and basic apps, delete, verify.

No answer ever carries a secret: ``secret_hint`` shows its last characters at most.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from accounts.models import Tenant
from api.auth import request_actor
from api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from api.pagination import PageParams, paginate
from api.schemas import CredentialOut, CredentialStatus, JsonObject, Text, errors
from api.services import (
    credential_create_from_api,
    credential_reconnect_from_api,
    end_user_get_or_404,
)
from core.errors import Conflict, NotFound
from integrations.models import MAX_LABEL_LENGTH, App, Credential
from integrations.selectors import app_get_for_tenant, credential_get, credential_list
from integrations.services.credentials import credential_delete
from integrations.services.verification import VerifyKind, credential_verify

router = Router(tags=["credentials"])


class CredentialFilters(PageParams):
    user: Text | None = Field(None, max_length=255, description="Only this user's (your id).")
    app: Text | None = Field(None, max_length=64, description="Only this app's (its slug).")
    status: CredentialStatus | None = Field(None, description="Only credentials in this status.")


class CredentialPageOut(Schema):
    data: list[CredentialOut]
    next_cursor: str | None = Field(..., description="Pass as `cursor` for the next page.")


class CredentialIn(Schema):
    user: Text = Field(..., min_length=1, max_length=255, description="Your id for the user.")
    app: Text = Field(..., min_length=1, max_length=64, description="An API-key or basic app.")
    fields: JsonObject = Field(
        ..., description="The app's form fields by name, as the connect modal asks for them."
    )
    label: Text = Field("", max_length=MAX_LABEL_LENGTH, description="A name for the account.")

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "user": "user-42",
                    "app": "sandbox-apikey",
                    "fields": {"api_key": "sbx_4f9d1c7e2a3b5d6f8a9b0c1d"},
                    "label": "Main account",
                }
            ]
        },
    }


class CredentialCreatedOut(CredentialOut):
    already_existed: bool = Field(
        False,
        description=(
            "The provider account was already connected for this user: that credential (with "
            "its id, label and installations) now holds the new secret, and no new one exists."
        ),
    )


class VerificationOut(Schema):
    result: Literal["verified", "rejected", "unavailable"] = Field(
        ...,
        description=(
            "`verified`: the provider accepted the credential (now `active`); `rejected`: it "
            "refused it (`invalid`, or `expired` when the OAuth2 grant is gone); `unavailable`: "
            "the provider was down or busy, nothing changed, try again later."
        ),
    )
    reason: str
    retry_after: float | None = Field(None, description="Seconds, when the provider said.")
    credential: CredentialOut


def _app_or_404(tenant: Tenant, slug: str) -> App:
    app = app_get_for_tenant(tenant=tenant, slug=slug)
    if app is None:
        raise NotFound(f"No app “{slug}”.", code="app_not_found")
    return app


def _credential_or_404(tenant: Tenant, credential_id: UUID) -> Credential:
    credential = credential_get(tenant=tenant, credential_id=credential_id)
    if credential is None:
        raise NotFound(f"No credential {credential_id}.", code="credential_not_found")
    return credential


@router.get(
    "/credentials",
    response={200: CredentialPageOut, **errors(404, 422)},
    summary="List credentials",
    description=(
        "Your users' connected accounts, oldest first, a page at a time. `user` and `app` "
        "name a user and an app you have; an unknown one is a 404."
    ),
)
def list_credentials(request: HttpRequest, filters: Query[CredentialFilters]):
    end_user = (
        end_user_get_or_404(tenant=request.tenant, external_id=filters.user)
        if filters.user is not None
        else None
    )
    app = _app_or_404(request.tenant, filters.app) if filters.app is not None else None
    credentials = credential_list(
        tenant=request.tenant,
        end_user=end_user,
        app_id=app.pk if app else None,
        status=filters.status,
    )
    result = paginate(credentials, cursor=filters.cursor, limit=filters.limit)
    return {"data": result.items, "next_cursor": result.next_cursor}


@router.post(
    "/credentials",
    response={
        200: CredentialCreatedOut,
        201: CredentialCreatedOut,
        **errors(404, 409, 422, 503),
    },
    summary="Connect an API-key or basic account",
    description=(
        "Validates `fields` exactly as the connect modal's form does (422 naming each field), "
        "then asks the provider, once and before anything is stored, whether it accepts them "
        "(the same check as the modal's). 201 with the new, `active` credential; 200 with "
        "`already_existed` when the same provider account was already connected (that "
        "credential, with its id, label and installations, now holds the new secret). A "
        "secret the provider refuses is a 422 `credential_rejected` with its reason; a "
        "provider that does not answer is a 503 `provider_unavailable` with `Retry-After`. "
        "Neither stores anything or sends a webhook. An OAuth2 app is a 422 (`oauth2_app`): "
        "its users connect through the modal."
    ),
    openapi_extra={"parameters": [IDEMPOTENCY_PARAMETER]},
)
@idempotent
def create_credential(request: HttpRequest, payload: CredentialIn):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=payload.user)
    app = _app_or_404(request.tenant, payload.app)
    connection = credential_create_from_api(
        end_user=end_user,
        app=app,
        fields=payload.fields,
        label=payload.label,
        actor=request_actor(request),
    )
    credential = credential_get(tenant=request.tenant, credential_id=connection.credential.pk)
    credential.already_existed = connection.already_existed
    return Status(200 if connection.already_existed else 201, credential)


@router.get(
    "/credentials/{credential_id}",
    response={200: CredentialOut, **errors(404, 422)},
    summary="Get a credential",
)
def get_credential(request: HttpRequest, credential_id: UUID):
    return _credential_or_404(request.tenant, credential_id)


@router.delete(
    "/credentials/{credential_id}",
    response={204: None, **errors(404, 422)},
    summary="Disconnect a credential",
    description=(
        "Revokes the account's tokens at the provider where it supports revocation, destroys "
        "the secret, disables the installations that used it (saying why) and deletes the "
        "credential, with the `credential.revoked` and `credential.deleted` webhooks."
    ),
)
def delete_credential(request: HttpRequest, credential_id: UUID):
    credential = _credential_or_404(request.tenant, credential_id)
    credential_delete(credential=credential, actor=request_actor(request))
    return HttpResponse(status=204)


class ReconnectIn(Schema):
    fields: JsonObject = Field(
        ..., description="The app's form fields by name, with the account's new secret."
    )

    model_config = {"extra": "forbid"}


@router.post(
    "/credentials/{credential_id}/reconnect",
    response={200: CredentialOut, **errors(404, 422, 503)},
    summary="Put a new secret on an API-key or basic account",
    description=(
        "Checks `fields` as `POST /credentials` does, then asks the provider whose account the "
        "new secret is. The same account: the credential keeps its id, label and "
        "installations, holds the new secret and is `active` (webhook "
        "`credential.reconnected`). Another account is a 422 `identity_mismatch`; a refused "
        "secret a 422 `credential_rejected`; a provider that does not answer a 503 with "
        "`Retry-After`. None of them changes anything."
    ),
)
def reconnect_credential(request: HttpRequest, credential_id: UUID, payload: ReconnectIn):
    credential = _credential_or_404(request.tenant, credential_id)
    connection = credential_reconnect_from_api(
        credential=credential, fields=payload.fields, actor=request_actor(request)
    )
    return credential_get(tenant=request.tenant, credential_id=connection.credential.pk)


@router.post(
    "/credentials/{credential_id}/verify",
    response={200: VerificationOut, **errors(404, 409, 422)},
    summary="Verify a credential now",
    description=(
        "Sends the app's verification request with the account's credential now (refreshing "
        "an OAuth2 token first when it is due) and answers with the result. A revoked "
        "credential is a 409."
    ),
)
def verify_credential(request: HttpRequest, credential_id: UUID):
    credential = _credential_or_404(request.tenant, credential_id)
    outcome = credential_verify(credential_id=credential.pk, actor=request_actor(request))
    if outcome.kind == VerifyKind.SKIPPED:
        raise Conflict(
            f"The credential is {credential.get_status_display().lower()}; there is nothing to "
            "verify. The user must connect the account again.",
            code="credential_revoked",
        )
    current = outcome.credential or credential
    current = credential_get(tenant=request.tenant, credential_id=current.pk) or current
    return {
        "result": outcome.kind,
        "reason": outcome.reason,
        "retry_after": outcome.retry_after,
        "credential": current,
    }
