"""The users API: your end users by your own id, with their connected apps."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from accounts.models import EndUser
from accounts.selectors import end_user_list
from accounts.services.end_users import end_user_upsert_checked
from api.auth import request_actor
from api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from api.pagination import PageParams, paginate
from api.schemas import (
    CREDENTIAL_EXAMPLE,
    CredentialOut,
    Email,
    HttpUrl,
    IdText,
    NotConnectableOut,
    Text,
    errors,
    not_connectable_fields,
)
from api.services import end_user_get_or_404
from integrations.selectors import (
    Connectability,
    EndUserIntegration,
    app_connectability,
    end_user_integrations,
)
from integrations.services.end_users import end_user_delete

router = Router(tags=["users"])

INTEGRATIONS_DESCRIPTION = """
`integrations` has one entry per app (by slug) that the user has connected an account to or
that a flow they installed uses:

- `enabled`: one of the user's installations of a flow using the app is enabled;
- `credential_id`: the account in use for the app: the one the user's installations use (an
  enabled installation's first, the most recently changed first); when no installation uses
  one, the user's newest active credential for the app; `null` when there is none;
- `all_credentials`: every account the user connected to the app, oldest first;
- `installations`: the installations using the app, with the account each uses;
- `connectable`: whether end users can connect the app now; when not, `not_connectable` says
  why (`app_disabled`, or `oauth_client_missing`: an OAuth2 app without your OAuth client is not
  offered in the modal).
"""


class UserProfileIn(Schema):
    email: Email | None = Field(None, examples=["ada@example.com"])
    name: Text | None = Field(None, max_length=200, examples=["Ada Lovelace"])
    account_name: Text | None = Field(None, max_length=200, examples=["Analytical Engines Ltd"])
    image: HttpUrl | None = Field(None, max_length=500, description="URL of the user's picture.")

    model_config = {"extra": "forbid"}


class UserIn(UserProfileIn):
    id: IdText = Field(..., description="Your id for the user.", examples=["user-42"])


class UserSummaryOut(Schema):
    id: str = Field(..., description="Your id for the user (`external_id`).")
    email: str
    name: str
    account_name: str
    image: str
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_id(obj: EndUser) -> str:
        return obj.external_id

    @staticmethod
    def resolve_image(obj: EndUser) -> str:
        return obj.image_url


class InstallationRefOut(Schema):
    installation_id: UUID
    flow_id: UUID
    enabled: bool
    credential_id: UUID | None


class IntegrationOut(Schema):
    enabled: bool
    credential_id: UUID | None
    all_credentials: list[CredentialOut]
    installations: list[InstallationRefOut]
    connectable: bool
    not_connectable: NotConnectableOut | None


def _integration(entry: EndUserIntegration, connectability: Connectability) -> dict:
    return {
        **not_connectable_fields(connectability),
        "enabled": entry.enabled,
        "credential_id": entry.credential.pk if entry.credential else None,
        "all_credentials": entry.credentials,
        "installations": [
            {
                "installation_id": installation.pk,
                "flow_id": installation.flow_id,
                "enabled": installation.enabled,
                "credential_id": next(
                    (
                        link.credential_id
                        for link in installation.credential_links.all()
                        if link.app_id == entry.app.pk
                    ),
                    None,
                ),
            }
            for installation in entry.installations
        ],
    }


class UserOut(UserSummaryOut):
    integrations: dict[str, IntegrationOut]

    @staticmethod
    def resolve_integrations(obj: EndUser) -> dict[str, dict]:
        entries = end_user_integrations(end_user=obj)
        found = app_connectability(
            tenant=obj.tenant, apps=[entry.app for entry in entries.values()]
        )
        return {slug: _integration(entry, found[entry.app.pk]) for slug, entry in entries.items()}

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "user-42",
                    "email": "ada@example.com",
                    "name": "Ada Lovelace",
                    "account_name": "",
                    "image": "",
                    "created_at": "2025-01-15T09:58:00Z",
                    "updated_at": "2025-01-15T09:58:00Z",
                    "integrations": {
                        "stripe": {
                            "enabled": True,
                            "credential_id": "0b7c6f2e-3a51-4d8e-9a43-5f0d2c7b9e11",
                            "all_credentials": [CREDENTIAL_EXAMPLE],
                            "installations": [
                                {
                                    "installation_id": "7d1e0c55-2b7a-4f0e-8f3e-1c2d3e4f5a6b",
                                    "flow_id": "3c9a1d2e-5f6b-4a7c-8d9e-0f1a2b3c4d5e",
                                    "enabled": True,
                                    "credential_id": "0b7c6f2e-3a51-4d8e-9a43-5f0d2c7b9e11",
                                }
                            ],
                            "connectable": True,
                            "not_connectable": None,
                        }
                    },
                }
            ]
        }
    }


class UserPageOut(Schema):
    data: list[UserSummaryOut]
    next_cursor: str | None = Field(..., description="Pass as `cursor` for the next page.")


@router.get(
    "/users",
    response={200: UserPageOut, **errors(422)},
    summary="List users",
    description="Your end users, oldest first, a page at a time (cursor pagination).",
)
def list_users(request: HttpRequest, page: Query[PageParams]):
    result = paginate(end_user_list(tenant=request.tenant), cursor=page.cursor, limit=page.limit)
    return {"data": result.items, "next_cursor": result.next_cursor}


@router.post(
    "/users",
    response={200: UserOut, 201: UserOut, **errors(422)},
    summary="Create or update a user",
    description="Creates the user with this `id` (201) or updates the fields given (200).",
    openapi_extra={"parameters": [IDEMPOTENCY_PARAMETER]},
)
@idempotent
def create_user(request: HttpRequest, payload: UserIn):
    upserted = end_user_upsert_checked(
        tenant=request.tenant, external_id=payload.id, profile=payload.dict(exclude={"id"})
    )
    return Status(201 if upserted.created else 200, upserted.end_user)


@router.get(
    "/users/{external_id}",
    response={200: UserOut, **errors(404)},
    summary="Get a user with their integrations",
    description=INTEGRATIONS_DESCRIPTION,
)
def get_user(request: HttpRequest, external_id: Text):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    return end_user


@router.put(
    "/users/{external_id}",
    response={200: UserOut, 201: UserOut, **errors(422)},
    summary="Create or update a user by id",
    description="Creates the user (201) or updates the fields given (200); omitted fields stay.",
)
def put_user(request: HttpRequest, external_id: IdText, payload: UserProfileIn):
    upserted = end_user_upsert_checked(
        tenant=request.tenant, external_id=external_id, profile=payload.dict()
    )
    return Status(201 if upserted.created else 200, upserted.end_user)


@router.delete(
    "/users/{external_id}",
    response={204: None, **errors(404)},
    summary="Delete a user",
    description=(
        "Disconnects every account of the user (revoked at the provider where it supports "
        "revocation, each with a `credential.deleted` webhook), uninstalls their flows "
        "(`installation.deleted`), then deletes the user and their sessions."
    ),
)
def delete_user(request: HttpRequest, external_id: Text):
    end_user = end_user_get_or_404(tenant=request.tenant, external_id=external_id)
    end_user_delete(end_user=end_user, actor=request_actor(request))
    return HttpResponse(status=204)
