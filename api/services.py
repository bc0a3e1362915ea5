"""The server API's use cases that combine domain services (the endpoints stay thin).

Each turns input problems into domain errors with the API's field names, and leaves nothing
half-done behind.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import EndUser, Tenant
from accounts.selectors import end_user_get
from accounts.services.audit import Actor
from core.errors import Invalid, NotFound, Unavailable
from integrations.models import App, Credential
from integrations.services.credentials import (
    NewSecret,
    credential_fields_clean,
    label_clean,
)
from integrations.services.verification import Connection, ConnectKind, credential_connect

# When a provider that did not answer named no Retry-After.
UNAVAILABLE_RETRY_SECONDS = 30


def end_user_get_or_404(*, tenant: Tenant, external_id: str) -> EndUser:
    end_user = end_user_get(tenant=tenant, external_id=external_id)
    if end_user is None:
        raise NotFound(f"No user with id “{external_id}”.", code="user_not_found")
    return end_user


def credential_create_from_api(
    *, end_user: EndUser, app: App, fields: dict[str, Any], label: str, actor: Actor
) -> Connection:
    """Connect an API-key or basic account as the modal's form does: the provider checks the
    secret first (the entry rule), and only an accepted secret becomes a credential.

    The same provider account again updates the credential that holds it (``already_existed``).
    A refused secret is a 422 with the provider's reason, a provider that does not answer a
    503 with ``Retry-After``; neither stores anything.
    """
    if app.is_oauth2:
        raise Invalid(
            f"{app.name} connects through OAuth2: the user must sign in through the connect "
            "modal (create a session with POST /api/v1/sessions). Only API-key and basic apps "
            "can be connected through this endpoint.",
            code="oauth2_app",
            fields={"app": "An OAuth2 app: use the connect modal."},
        )
    secret, label = _fields_and_label(app=app, fields=fields, label=label)
    connection = credential_connect(
        end_user=end_user, app=app, new=NewSecret(secret=secret), label=label, actor=actor
    )
    return _accepted(connection, app=app)


def credential_reconnect_from_api(
    *, credential: Credential, fields: dict[str, Any], actor: Actor
) -> Connection:
    """Put a new API key on an existing account, in place (its id, label and installations
    stay), once the provider confirms it is the same account: the modal's reconnect."""
    app = credential.app
    if app.is_oauth2:
        raise Invalid(
            f"{app.name} reconnects through OAuth2: the user reconnects it in the modal.",
            code="oauth2_app",
        )
    secret, _ = _fields_and_label(app=app, fields=fields, label="")
    connection = credential_connect(
        end_user=credential.end_user,
        app=app,
        new=NewSecret(secret=secret),
        actor=actor,
        reconnect=credential,
    )
    if connection.kind == ConnectKind.IDENTITY_MISMATCH:
        raise Invalid(
            f"The new key belongs to {app.name} account {connection.identity}, but this "
            f"credential is {credential.identity}. Nothing was changed; connect it as another "
            "account with POST /api/v1/credentials instead.",
            code="identity_mismatch",
        )
    return _accepted(connection, app=app)


def _fields_and_label(
    *, app: App, fields: dict[str, Any], label: str
) -> tuple[dict[str, str], str]:
    """The form's values as the modal checks them, or a 422 naming each field."""
    try:
        return credential_fields_clean(app=app, fields=fields, with_help=True), label_clean(label)
    except ValidationError as exc:
        problems = {
            (key if key == "label" else f"fields.{key}"): " ".join(messages)
            for key, messages in exc.message_dict.items()
        }
        raise Invalid(
            f"The {app.name} fields are not valid: "
            + "; ".join(f"{k}: {v}" for k, v in problems.items()),
            code="invalid_fields",
            fields=problems,
        ) from exc


def _accepted(connection: Connection, *, app: App) -> Connection:
    """The connection when the provider accepted it; its refusal as the API's error."""
    if connection.kind == ConnectKind.REJECTED:
        secret_fields = app.secret_field_names or [spec["name"] for spec in app.fields]
        raise Invalid(
            f"{connection.reason} Nothing was stored.",
            code="credential_rejected",
            fields={f"fields.{secret_fields[0]}": connection.reason},
        )
    if connection.kind == ConnectKind.UNAVAILABLE:
        wait = max(1, math.ceil(connection.retry_after or UNAVAILABLE_RETRY_SECONDS))
        raise Unavailable(
            f"{connection.reason}, so nothing was stored; send the request again in {wait} "
            "seconds.",
            code="provider_unavailable",
            retry_after=wait,
        )
    return connection
