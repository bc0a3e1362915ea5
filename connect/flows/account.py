"""Managing one connected account from the modal: rename it, check it again, disconnect it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connect.flows.access import check_owned, end_user_actor
from connect.messages import say
from core.errors import Invalid
from integrations.models import ConnectSession, Credential, Installation
from integrations.services import credentials
from integrations.services.verification import VerificationOutcome, credential_verify


def credential_rename(*, session: ConnectSession, credential: Credential, label: str) -> Credential:
    """Raises ValidationError (``label``) for a name that is too long."""
    check_owned(session, credential)
    return credentials.credential_rename(
        credential=credential, label=label, actor=end_user_actor(session)
    )


def credential_check_again(
    *, session: ConnectSession, credential: Credential
) -> VerificationOutcome:
    """Ask the provider about the secret the account has (it may have been wrong before)."""
    check_owned(session, credential)
    if not credential.has_secret or credential.status == Credential.Status.REVOKED:
        raise Invalid(say("reconnect_needed", app=credential.app.name), code="reconnect_needed")
    return credential_verify(credential_id=credential.pk, actor=end_user_actor(session))


@dataclass(frozen=True)
class Disconnected:
    event_data: dict[str, Any]
    switched_off: list[str]


def credential_disconnect(*, session: ConnectSession, credential: Credential) -> Disconnected:
    """Revoke at the provider where it can, remove the account, and say which flows stopped."""
    check_owned(session, credential)
    switched_off = list(
        Installation.objects.filter(credential_links__credential=credential, enabled=True)
        .order_by("flow__name")
        .values_list("flow__name", flat=True)
        .distinct()
    )
    data = credentials.credential_delete(credential=credential, actor=end_user_actor(session))
    return Disconnected(event_data=data, switched_off=switched_off)
