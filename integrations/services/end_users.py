"""Removing an end user: every account first (each with its events), then the user.

One path for the API's ``DELETE /users/{id}`` and the admin, so that a user's credentials never
disappear without their ``credential.deleted``.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import EndUser
from accounts.services.audit import Actor, audit_record
from integrations.models import Credential
from integrations.selectors import installation_list_for_end_user
from integrations.services.credentials import credential_delete
from integrations.services.installations import installation_uninstall


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
