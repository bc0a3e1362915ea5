"""The sessions API: issue and revoke connect sessions (DESIGN.md's contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.responses import Status

from api.errors import ErrorOut
from api.schemas import (
    OPEN_PROPERTIES,
    SESSION_LENGTH_PATTERN,
    Colour,
    Email,
    HttpUrl,
    IdText,
    JsonObject,
    Text,
)
from integrations.models import ConnectSession
from integrations.services.connect_sessions import connect_session_open, connect_session_revoke

router = Router(tags=["sessions"])


class EndUserIn(Schema):
    id: IdText = Field(..., description="Your id for the user.")
    email: Email | None = None
    name: Text | None = Field(None, max_length=200)
    account_name: Text | None = Field(None, max_length=200)
    image: HttpUrl | None = Field(None, max_length=500, description="URL of the user's picture.")

    model_config = {"json_schema_extra": OPEN_PROPERTIES}


class ThemeIn(Schema):
    primary_color: Colour | None = Field(None, examples=["#4f46e5"])
    logo_url: HttpUrl | None = None
    favicon_url: HttpUrl | None = None
    vault_name: Text | None = Field(None, max_length=80)
    sidepanel_background_color: Colour | None = None
    sidepanel_text_color: Colour | None = None
    privacy_url: HttpUrl | None = None
    terms_url: HttpUrl | None = None
    color_scheme: Literal["light", "dark", "auto"] | None = Field(
        None,
        description="Light, dark, or `auto` (the default): the person's system setting "
        "(`prefers-color-scheme`). Your colours are adapted to keep AA contrast in both.",
    )

    model_config = {"extra": "forbid"}


class SessionIn(Schema):
    end_user: EndUserIn
    deployment_id: UUID | None = None
    apps: list[Text] | None = Field(None, max_length=100, description="Only offer these app slugs.")
    allow_multiple: bool = True
    redirect_uri: HttpUrl | None = Field(None, max_length=1000)
    session_length: Text | None = Field(
        None,
        max_length=10,
        examples=["30m", "1h"],
        json_schema_extra={"pattern": SESSION_LENGTH_PATTERN},
    )
    theme: ThemeIn | None = None
    consumer_metadata: JsonObject | None = None
    custom_settings: JsonObject | None = None
    locale: Literal["en", "fr", "de", "es", "pt", "it", "ja", "nl"] | None = Field(
        None,
        description="The modal's language; without it, the person's browser chooses "
        "(Accept-Language), falling back to English.",
    )

    model_config = {
        "json_schema_extra": {
            **OPEN_PROPERTIES,
            "examples": [
                {
                    "end_user": {"id": "user-42", "email": "ada@example.com", "name": "Ada"},
                    "apps": ["hubspot"],
                    "session_length": "30m",
                    "theme": {"primary_color": "#4f46e5", "vault_name": "Acme"},
                }
            ],
        }
    }


class SessionOut(Schema):
    id: UUID
    token: str = Field(..., description="Shown once: the session's secret, inside `url`.")
    url: str
    expires_at: datetime


@router.post(
    "/sessions",
    response={201: SessionOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut, 429: ErrorOut},
    summary="Create a connect session",
)
def create_session(request: HttpRequest, payload: SessionIn):
    issued = connect_session_open(
        tenant=request.tenant,
        end_user=payload.end_user.dict(),
        deployment_id=payload.deployment_id,
        apps=payload.apps,
        allow_multiple=payload.allow_multiple,
        redirect_uri=payload.redirect_uri or "",
        session_length=payload.session_length,
        theme=payload.theme.dict(exclude_none=True) if payload.theme else None,
        consumer_metadata=payload.consumer_metadata,
        custom_settings=payload.custom_settings,
        locale=payload.locale or "",
    )
    return Status(
        201,
        {
            "id": issued.session.pk,
            "token": issued.token,
            "url": issued.url,
            "expires_at": issued.session.expires_at,
        },
    )


@router.delete(
    "/sessions/{session_id}",
    response={204: None, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Revoke a connect session",
)
def revoke_session(request: HttpRequest, session_id: UUID):
    session = get_object_or_404(ConnectSession, tenant=request.tenant, pk=session_id)
    connect_session_revoke(session=session)
    return Status(204, None)
