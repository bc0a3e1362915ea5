"""What a connect session may act on: its tenant's and end user's rows, and the apps it offers."""

from __future__ import annotations

from accounts.services.audit import Actor
from connect.messages import say
from core.errors import Conflict, NotFound
from integrations.models import App, ConnectSession, Credential


def end_user_actor(session: ConnectSession) -> Actor:
    return Actor.end_user(session.end_user_id)


def check_owned(session: ConnectSession, credential: Credential, app: App | None = None) -> None:
    """Another tenant's or user's account, or one of another app, does not exist here."""
    if (
        credential.tenant_id != session.tenant_id
        or credential.end_user_id != session.end_user_id
        or (app is not None and credential.app_id != app.pk)
    ):
        raise NotFound(say("not_found"), code="not_found")


def check_may_connect(session: ConnectSession) -> None:
    """A spent single-use link connects nothing more (its page may still show the outcome)."""
    if session.is_spent:
        raise Conflict(say("handoff_spent"), code="handoff_spent")


def check_may_add(session: ConnectSession, app: App) -> None:
    """Without allow_multiple, one account per app: a second one is a reconnect instead."""
    if session.allow_multiple:
        return
    existing = (
        Credential.objects.filter(
            tenant_id=session.tenant_id, end_user_id=session.end_user_id, app=app
        )
        .exclude(status=Credential.Status.REVOKED)
        .first()
    )
    if existing is not None:
        raise Conflict(
            say("already_connected", app=app.name, account=existing.display_name),
            code="already_connected",
        )
