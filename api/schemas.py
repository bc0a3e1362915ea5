"""Output schemas shared by several endpoints, and the error responses every endpoint documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from django.core.exceptions import ValidationError
from ninja import Field, Schema
from pydantic import AfterValidator

from api.errors import ErrorOut
from core.validators import NO_CONTROL_CHARACTERS_PATTERN, validate_no_control_characters
from integrations.models import Credential


def _no_control_characters(value: str) -> str:
    try:
        return validate_no_control_characters(value)
    except ValidationError as exc:
        raise ValueError(exc.messages[0]) from None


# Every string the API takes (an id, a name, a slug, a URL, a label): no control character, as
# the pattern tells the schema's readers (and the edge middleware refuses them before this).
Text = Annotated[
    str,
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": NO_CONTROL_CHARACTERS_PATTERN}),
]

CredentialStatus = Literal["pending", "active", "invalid", "expired", "revoked"]

# Every endpoint answers these through the error handlers; listing them keeps the schema honest.
COMMON_ERRORS = {401: ErrorOut, 429: ErrorOut}
NOT_FOUND = {404: ErrorOut}
INVALID = {422: ErrorOut}


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The error responses of an endpoint: 401 and 429 always, plus ``statuses``."""
    return {**COMMON_ERRORS, **{status: ErrorOut for status in statuses}}


# One credential as the API shows it; reused wherever a credential appears in an example.
CREDENTIAL_EXAMPLE = {
    "id": "0b7c6f2e-3a51-4d8e-9a43-5f0d2c7b9e11",
    "user": "user-42",
    "app": "stripe",
    "label": "Production",
    "identity": "acct_1Nv0FGQ9RKHgCVdK",
    "status": "active",
    "secret_hint": "…9f3a",
    "scopes": [],
    "expires_at": None,
    "last_verified_at": "2025-01-15T10:00:05Z",
    "last_verification_error": "",
    "created_at": "2025-01-15T10:00:00Z",
    "updated_at": "2025-01-15T10:00:05Z",
}


class CredentialOut(Schema):
    """A connected account. Never the secret: ``secret_hint`` shows its last characters at most."""

    id: UUID
    user: str = Field(..., description="The end user's id (your `external_id`).")
    app: str = Field(..., description="The app's slug.")
    label: str
    identity: str = Field(..., description="The account at the provider, read by verification.")
    status: CredentialStatus
    secret_hint: str = Field(..., description="e.g. `…a1b2`; empty when the secret is short.")
    scopes: list[str]
    expires_at: datetime | None = Field(None, description="When the access token expires.")
    last_verified_at: datetime | None
    last_verification_error: str
    created_at: datetime
    updated_at: datetime

    model_config = {"json_schema_extra": {"examples": [CREDENTIAL_EXAMPLE]}}

    @staticmethod
    def resolve_user(obj: Credential) -> str:
        return obj.end_user.external_id

    @staticmethod
    def resolve_app(obj: Credential) -> str:
        return obj.app.slug

    @staticmethod
    def resolve_scopes(obj: Credential) -> list[str]:
        return [str(scope) for scope in obj.scopes or []]
