"""The server API's use cases that combine domain services (the endpoints stay thin).

Each turns input problems into domain errors with the API's field names, and leaves nothing
half-done behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import EndUser, Tenant
from accounts.selectors import end_user_get
from accounts.services.audit import Actor, audit_record
from core.errors import Invalid, NotFound
from integrations.models import App, Credential
from integrations.selectors import credential_merged_into, installation_list_for_end_user
from integrations.services.credentials import (
    credential_create_from_fields,
    credential_delete,
    credential_fields_clean,
)
from integrations.services.installations import installation_uninstall

VERIFY_POLL_SECONDS = 0.1


def end_user_get_or_404(*, tenant: Tenant, external_id: str) -> EndUser:
    end_user = end_user_get(tenant=tenant, external_id=external_id)
    if end_user is None:
        raise NotFound(f"No user with id “{external_id}”.", code="user_not_found")
    return end_user


def end_user_delete(*, end_user: EndUser, actor: Actor) -> None:
    """Disconnect every account (revoked at the provider where it can be, each with its
    ``credential.deleted`` event), uninstall every flow (``installation.deleted``), then delete
    the user with its sessions.

    Each credential is revoked before the user goes, so an interrupted delete leaves a user
    with fewer live secrets, never a secret without its user's say; running it again finishes.
    """
    for credential in Credential.objects.filter(tenant_id=end_user.tenant_id, end_user=end_user):
        credential_delete(credential=credential, actor=actor)
    with transaction.atomic():
        flows = {
            installation.flow_id: installation.flow
            for installation in installation_list_for_end_user(end_user=end_user)
        }
        for flow in flows.values():
            installation_uninstall(end_user=end_user, flow=flow, actor=actor)
        audit_record(
            tenant=end_user.tenant,
            actor=actor,
            action="end_user.delete",
            target=end_user.external_id,
        )
        end_user.delete()


@dataclass(frozen=True)
class CreatedCredential:
    credential: Credential
    already_existed: bool


def credential_create_from_api(
    *,
    end_user: EndUser,
    app: App,
    fields: dict[str, Any],
    label: str,
    actor: Actor,
    wait_seconds: float,
) -> CreatedCredential:
    """Create an API-key or basic credential as the modal's form does, then wait (at most
    ``wait_seconds``) for the queued verification to answer.

    Verification is the one shared path: the job ``credential_create_from_fields`` queues.
    When it finds the same provider account already connected, the existing credential stays
    (with the new secret) and is what this returns, with ``already_existed``.
    """
    if app.is_oauth2:
        raise Invalid(
            f"{app.name} connects through OAuth2: the user must sign in through the connect "
            "modal (create a session with POST /api/v1/sessions). Only API-key and basic apps "
            "can be connected through this endpoint.",
            code="oauth2_app",
            fields={"app": "An OAuth2 app: use the connect modal."},
        )
    try:
        credential_fields_clean(app=app, fields=fields)
    except ValidationError as exc:
        problems = {
            f"fields.{key}": " ".join(messages) for key, messages in exc.message_dict.items()
        }
        raise Invalid(
            f"The {app.name} fields are not valid: "
            + "; ".join(f"{k}: {v}" for k, v in problems.items()),
            code="invalid_fields",
            fields=problems,
        ) from exc
    credential = credential_create_from_fields(
        end_user=end_user, app=app, fields=fields, label=label, actor=actor
    )
    deadline = time.monotonic() + wait_seconds
    while True:
        current = (
            Credential.objects.select_related("app", "end_user", "tenant")
            .filter(pk=credential.pk)
            .first()
        )
        if current is None:
            merged = credential_merged_into(tenant=end_user.tenant, credential_id=credential.pk)
            if merged is not None:
                return CreatedCredential(credential=merged, already_existed=True)
            raise NotFound(
                "The credential was removed while it was being verified.", code="not_found"
            )
        answered = current.status != Credential.Status.PENDING or current.verification_attempts > 0
        if answered or time.monotonic() >= deadline:
            return CreatedCredential(credential=current, already_existed=False)
        time.sleep(VERIFY_POLL_SECONDS)
