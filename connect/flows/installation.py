"""The flows that use an account: switching one on or off for it, its settings, its workflows."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from connect.flows.access import check_owned, end_user_actor
from connect.messages import say
from core.errors import NotFound
from integrations.models import ConnectSession, Credential, Flow, Installation
from integrations.services.installations import (
    installation_install,
    installation_set_enabled,
    installation_update,
)


def _installation_for(session: ConnectSession, flow: Flow, credential: Credential):
    return (
        Installation.objects.select_related("flow", "end_user", "tenant")
        .filter(
            tenant_id=session.tenant_id,
            end_user_id=session.end_user_id,
            flow=flow,
            credential_links__credential=credential,
        )
        .first()
    )


@transaction.atomic
def installation_switch(
    *, session: ConnectSession, flow: Flow, credential: Credential, enabled: bool
) -> tuple[Installation | None, str]:
    """Switch a flow on or off for one account; switching on installs it where it is not.

    All or nothing: a flow that cannot be switched on is not left installed either.
    """
    check_owned(session, credential)
    actor = end_user_actor(session)
    installation = _installation_for(session, flow, credential)
    if installation is None:
        if not enabled:
            return None, say("flow_off", flow=flow.name)
        installation, created = installation_install(
            end_user=session.end_user,
            flow=flow,
            credential=credential,
            allow_multiple=session.allow_multiple,
            actor=actor,
        )
        installation = _installation_for(session, flow, credential) or installation
        if not created:
            note = say("flow_uses", flow=flow.name, account=credential.display_name)
            if installation.enabled:
                return installation, note
            enabled_now = installation_set_enabled(
                installation=installation, enabled=True, actor=actor
            )
            return enabled_now, note
        if not installation.enabled:
            installation_set_enabled(installation=installation, enabled=True, actor=actor)
        return installation, say("flow_on", flow=flow.name)
    installation_set_enabled(installation=installation, enabled=enabled, actor=actor)
    return installation, say("flow_on" if enabled else "flow_off", flow=flow.name)


def installation_settings_save(
    *, session: ConnectSession, installation: Installation, settings: dict[str, Any]
) -> Installation:
    if installation.end_user_id != session.end_user_id:
        raise NotFound(say("installation_not_found"), code="not_found")
    merged = {**installation.settings, **settings}
    return installation_update(
        installation=installation, settings=merged, actor=end_user_actor(session)
    )


def installation_workflows_save(
    *, session: ConnectSession, installation: Installation, keys: list[str]
) -> Installation:
    if installation.end_user_id != session.end_user_id:
        raise NotFound(say("installation_not_found"), code="not_found")
    return installation_update(
        installation=installation, enabled_workflows=keys, actor=end_user_actor(session)
    )
