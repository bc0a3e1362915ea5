"""The app's own form: connect an API-key or basic account, or put a new key on one.

The key is checked against the provider before anything is stored (the entry rule,
``verification.credential_connect``): a key the provider refuses, or a provider that does not
answer, leaves no credential and no ``credential.*`` event, and the person stays in the form.
"""

from __future__ import annotations

from typing import Any

from connect.flows.access import check_may_add, check_may_connect, check_owned, end_user_actor
from connect.messages import say
from core.errors import Invalid
from integrations.models import App, ConnectSession, Credential
from integrations.services.connect_sessions import connect_session_spend
from integrations.services.credentials import NewSecret, credential_fields_clean, label_clean
from integrations.services.verification import Connection, credential_connect


def api_key_connect(
    *, session: ConnectSession, app: App, fields: dict[str, Any], label: str = ""
) -> Connection:
    """Check the form's secret with the provider and connect it when accepted.

    Raises ValidationError naming each bad field, or a DomainError; a refusal by the provider
    is the returned connection's ``kind``.
    """
    if app.is_oauth2:
        raise Invalid(say("oauth2_app", app=app.name), code="oauth2_app")
    check_may_connect(session)
    check_may_add(session, app)
    secret = credential_fields_clean(app=app, fields=fields)
    connection = credential_connect(
        end_user=session.end_user,
        app=app,
        new=NewSecret(secret=secret),
        label=label_clean(label),
        actor=end_user_actor(session),
    )
    if connection.ok:
        connect_session_spend(session=session)
    return connection


def api_key_reconnect(
    *, session: ConnectSession, credential: Credential, fields: dict[str, Any]
) -> Connection:
    """Put a new key on an account once the provider confirms it is the same account; a key
    of another account, or one the provider refuses, changes nothing."""
    check_owned(session, credential)
    check_may_connect(session)
    secret = credential_fields_clean(app=credential.app, fields=fields)
    connection = credential_connect(
        end_user=session.end_user,
        app=credential.app,
        new=NewSecret(secret=secret),
        actor=end_user_actor(session),
        reconnect=credential,
    )
    if connection.ok:
        connect_session_spend(session=session)
    return connection
