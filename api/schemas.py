"""Output schemas shared by several endpoints, and the error responses every endpoint documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Union
from uuid import UUID

from django.core.exceptions import ValidationError
from ninja import Field, Schema
from pydantic import AfterValidator
from typing_extensions import TypeAliasType

from api.errors import ErrorOut
from core.validators import (
    NO_CONTROL_CHARACTERS_PATTERN,
    TEXT_PATTERN,
    validate_no_control_characters,
)
from integrations.models import Credential
from integrations.selectors import Connectability


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


def _free_text(value: str) -> str:
    try:
        return validate_no_control_characters(value, text=True)
    except ValidationError as exc:
        raise ValueError(exc.messages[0]) from None


# A string inside free JSON (settings, metadata): tabs and line breaks are text there.
FreeText = Annotated[
    str, AfterValidator(_free_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
# Free JSON as the edge accepts it: keys are Text, strings FreeText, at any depth.
JsonValue = TypeAliasType(
    "JsonValue",
    Union[FreeText, int, float, bool, list["JsonValue"], dict[Text, "JsonValue"], None],  # noqa: UP007
)
JsonObject = dict[Text, JsonValue]
# For an input that ignores unknown properties (the sessions API, for forward compatibility):
# the schema says what the edge still checks in them (``api.api`` writes it out, as the
# components pydantic refers to exist only once the whole schema is built).
OPEN_PROPERTIES = {"x-open-properties": True}
OPEN_PROPERTIES_SCHEMA = {
    "propertyNames": {"pattern": NO_CONTROL_CHARACTERS_PATTERN},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}

# What the services' URL and e-mail checks (Django's validators) surely accept, as patterns the
# schema states; the services check them and answer with their own codes.
# At most three labels before the top-level domain: Django refuses a host over 253 characters.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}\.){{1,3}}[A-Za-z]{{2,40}}"
# Empty is allowed: an empty URL or e-mail means "none".
HTTP_URL_PATTERN = (
    rf"^(?:[Hh][Tt][Tt][Pp][Ss]?://(?:localhost|{_DOMAIN})(?::[0-9]{{1,4}})?"
    r"(?:[/?#][A-Za-z0-9._~%!$&'()*+,;=:@/?#-]*)?)?$"
)
EMAIL_PATTERN = rf"^(?:[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@{_DOMAIN})?$"


def _documented(pattern: str, **constraints: int) -> object:
    """A pattern the schema states and the service checks (with its own error code)."""
    return Field(json_schema_extra={"pattern": pattern}, **constraints)


HttpUrl = Annotated[
    str, AfterValidator(_no_control_characters), _documented(HTTP_URL_PATTERN, max_length=1000)
]
Email = Annotated[
    str, AfterValidator(_no_control_characters), _documented(EMAIL_PATTERN, max_length=254)
]
Colour = Annotated[
    str,
    AfterValidator(_no_control_characters),
    _documented(r"^(?:#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}))?$"),
]
# 1 second to one hour, as ``parse_session_length`` reads it; a hand-off link also takes hours
# up to 168 and days up to 7.
SESSION_LENGTH_PATTERN = (
    r"^(?:(?:[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|3600)s|(?:[1-9]|[1-5][0-9]|60)m"
    r"|(?:[1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])h|[1-7]d)$"
)


def _id_text(value: str) -> str:
    value = _no_control_characters(value)
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# An id of yours: not blank (it is stripped), no control characters.
IdText = Annotated[
    str,
    AfterValidator(_id_text),
    Field(
        min_length=1,
        max_length=255,
        json_schema_extra={
            "pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        },
    ),
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


class NotConnectableOut(Schema):
    """Why end users cannot connect an app (it is then not offered in the modal)."""

    code: Literal["app_disabled", "oauth_client_missing"]
    message: str = Field(..., examples=["HubSpot has no OAuth client: end users will not see it."])


def not_connectable_fields(connectability: Connectability) -> dict:
    """``connectable`` and ``not_connectable`` for an app, wherever the API lists apps."""
    if connectability.connectable:
        return {"connectable": True, "not_connectable": None}
    return {
        "connectable": False,
        "not_connectable": {"code": connectability.code, "message": connectability.reason},
    }
