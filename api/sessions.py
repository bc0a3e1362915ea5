"""The sessions API: issue, read and revoke connect sessions (DESIGN.md's contract), hand-off
links included."""

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


class HandoffIn(Schema):
    single_use: bool = Field(
        False, description="Spent once an account has been connected through the link."
    )
    recipient_name: Text | None = Field(
        None, max_length=200, description="Who the link is for (shown in the admin)."
    )
    recipient_email: Email | None = None

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
        description="How long the URL opens the modal: at most `1h` (the default); for a "
        "hand-off link, at most the tenant's hand-off maximum (7 days, `7d`, unless the tenant "
        "set less), which is also its default.",
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
    handoff: HandoffIn | None = Field(
        None,
        description="Make a hand-off link: a URL you send to another person (e.g. your "
        "customer's admin, who holds the credentials) to connect accounts for `end_user`. It "
        "lives longer (see `session_length`), may be single use, records each time it is "
        "opened, and the modal tells the person whose accounts they are connecting.",
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


class HandoffOut(Schema):
    single_use: bool
    spent_at: datetime | None = Field(
        None, description="When the first account was connected through a single-use link."
    )
    recipient_name: str
    recipient_email: str


class SessionOut(Schema):
    id: UUID
    token: str = Field(..., description="Shown once: the session's secret, inside `url`.")
    url: str
    expires_at: datetime
    handoff: HandoffOut | None = Field(None, description="Only for a hand-off link.")


class SessionOpenOut(Schema):
    opened_at: datetime
    client: str = Field(..., description='A coarse description, e.g. "Firefox on Linux".')


class SessionDetailOut(Schema):
    id: UUID
    end_user_id: str = Field(..., description="Your id for the user.")
    kind: Literal["session", "handoff"]
    status: Literal["open", "expired", "revoked", "spent"]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    handoff: HandoffOut | None = Field(None, description="Only for a hand-off link.")
    opens: list[SessionOpenOut] = Field(
        ..., description="Hand-off links: each time the link was opened, newest first."
    )


def _handoff_out(session: ConnectSession) -> dict | None:
    if not session.is_handoff:
        return None
    return {
        "single_use": session.single_use,
        "spent_at": session.spent_at,
        "recipient_name": session.recipient_name,
        "recipient_email": session.recipient_email,
    }


@router.post(
    "/sessions",
    response={201: SessionOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut, 429: ErrorOut},
    summary="Create a connect session or a hand-off link",
    exclude_none=True,
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
        handoff=payload.handoff.dict() if payload.handoff else None,
    )
    return Status(
        201,
        {
            "id": issued.session.pk,
            "token": issued.token,
            "url": issued.url,
            "expires_at": issued.session.expires_at,
            "handoff": _handoff_out(issued.session),
        },
    )


@router.get(
    "/sessions/{session_id}",
    response={200: SessionDetailOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Read a connect session or hand-off link (never its token)",
)
def get_session(request: HttpRequest, session_id: UUID):
    session = get_object_or_404(
        ConnectSession.objects.select_related("end_user").prefetch_related("opens"),
        tenant=request.tenant,
        pk=session_id,
    )
    return {
        "id": session.pk,
        "end_user_id": session.end_user.external_id,
        "kind": "handoff" if session.is_handoff else "session",
        "status": session.status,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "revoked_at": session.revoked_at,
        "last_used_at": session.last_used_at,
        "handoff": _handoff_out(session),
        "opens": [{"opened_at": o.opened_at, "client": o.client} for o in session.opens.all()],
    }


@router.delete(
    "/sessions/{session_id}",
    response={204: None, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Revoke a connect session",
)
def revoke_session(request: HttpRequest, session_id: UUID):
    session = get_object_or_404(ConnectSession, tenant=request.tenant, pk=session_id)
    connect_session_revoke(session=session)
    return Status(204, None)
