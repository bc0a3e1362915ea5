"""The events the modal hands to the embedding page, shaped as the JS SDK documents them
(``did-add-authorization``, ``did-fail-authorization-verification``,
``did-remove-authorization``); ``publish`` passes them to modal.js in the ``HX-Trigger`` header,
which posts them to the page's origin."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django_htmx.http import trigger_client_event

from integrations.models import Credential
from integrations.services.verification import Connection

EVENT_NAME = "portal-events"


def authorization_event(
    name: str,
    *,
    app_slug: str,
    credential: Credential | None = None,
    identity: str = "",
    flow_id: Any = None,
    already_exists: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """One event of the embedding-page protocol, shaped as the JS SDK documents it."""
    data: dict[str, Any] = {
        "identity": (credential.identity if credential is not None else "") or identity,
        "authorizationId": str(credential.pk) if credential is not None else None,
        "flowId": str(flow_id) if flow_id else None,
        "alreadyExists": already_exists,
        "app": app_slug,
    }
    if reason is not None:
        data["reason"] = reason
    return {"event": name, "data": data}


def refusal_event(
    connection: Connection | None,
    *,
    app_slug: str,
    reconnected: Credential | None = None,
    flow_id: Any = None,
) -> dict[str, Any] | None:
    """did-fail-authorization-verification for a connection the provider refused or did not
    answer: it names no account, or the account being reconnected, which stayed as it was.
    None when the input never reached the provider (the form's own errors)."""
    if connection is None or connection.ok:
        return None
    return authorization_event(
        "did-fail-authorization-verification",
        app_slug=app_slug,
        credential=reconnected,
        identity=connection.identity,
        flow_id=flow_id,
        reason=connection.reason or connection.kind,
    )


def credential_outcome_event(
    credential: Credential, *, flow_id: Any = None, already_exists: bool = False
) -> dict[str, Any] | None:
    """did-add-authorization or did-fail-authorization-verification, once the result is in."""
    if credential.status == Credential.Status.ACTIVE:
        return authorization_event(
            "did-add-authorization",
            app_slug=credential.app.slug,
            credential=credential,
            flow_id=flow_id,
            already_exists=already_exists,
        )
    if credential.status in (Credential.Status.INVALID, Credential.Status.EXPIRED):
        return authorization_event(
            "did-fail-authorization-verification",
            app_slug=credential.app.slug,
            credential=credential,
            flow_id=flow_id,
            already_exists=already_exists,
            reason=credential.last_verification_error or credential.get_status_display(),
        )
    return None


def removal_event(data: dict) -> dict:
    return {
        "event": "did-remove-authorization",
        "data": {
            "authorizationId": data.get("credential_id"),
            "app": data.get("app"),
            "identity": data.get("identity", ""),
        },
    }


def publish(response: HttpResponse, events: list[dict[str, Any] | None]) -> HttpResponse:
    """Hand events to modal.js (through HX-Trigger), which posts them to the embedding page."""
    events = [event for event in events if event]
    if events:
        trigger_client_event(response, EVENT_NAME, {"events": events})
    return response
