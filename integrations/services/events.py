"""The outbox: an event is written in the same transaction as the change it reports.

Each event gets one delivery row per interested webhook endpoint, queued for sending when the
transaction commits; the delivery job sends each at least once, signed (Standard Webhooks).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from core.prepared import PreparedRead
from core.writes import rows_insert
from integrations.models import Credential, Event, WebhookDelivery, WebhookEndpoint
from integrations.services.jobs import webhook_delivery_enqueue

# Every event type the outbox sends, with what it tells the tenant: webhook endpoints choose
# among these (tests/integrations/test_event_types.py checks that every type emitted is here).
EVENT_TYPES: dict[str, str] = {
    "credential.created": "An end user connected an account.",
    "credential.verified": "An account was verified: the provider accepted it.",
    "credential.verification_failed": "The provider refused an account on verification.",
    "credential.refreshed": "An account's access token was refreshed.",
    "credential.expired": "An account's authorization is gone; its owner must reconnect.",
    "credential.reconnected": "An account was reconnected in place with a new secret.",
    "credential.renamed": "An account was renamed.",
    "credential.revoked": "An account was revoked.",
    "credential.deleted": "An account was disconnected and deleted.",
    "credential.authorization_failed": "A sign-in ended without an account.",
    "installation.created": "An end user installed a flow.",
    "installation.updated": "An installation's settings, workflows or accounts changed.",
    "installation.enabled": "An installation was enabled.",
    "installation.disabled": "An installation was disabled.",
    "installation.deleted": "An installation was removed.",
    "installation.needs_update": "A new flow version needs the end user's action.",
    "workflow_run.succeeded": "A workflow run succeeded.",
    "workflow_run.failed": "A workflow run failed.",
}


# Which endpoints want an event; their secrets are read only to sign the delivery. This read
# and the inserts below are built once (core/prepared.py, core/writes.py): every verification
# and refresh job emits an event.
_endpoints_read = PreparedRead(
    lambda tenant_id: WebhookEndpoint.objects.filter(tenant_id=tenant_id, is_active=True).only(
        "pk", "is_active", "event_types"
    ),
    tenant_id=WebhookEndpoint._meta.get_field("tenant"),
)


def event_emit(*, tenant: Tenant, type: str, data: dict[str, Any]) -> Event:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Emit events inside the transaction of the change they report.")
    event = Event(tenant=tenant, type=type, data=data)
    rows_insert([event])
    now = timezone.now()
    deliveries = [
        WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now)
        for endpoint in _endpoints_read.run(tenant_id=tenant.pk)
        if endpoint.wants(type)
    ]
    rows_insert(deliveries)
    # Sent once the change commits; should the job be lost, the delivery sweep sends it.
    for delivery in deliveries:
        webhook_delivery_enqueue(delivery_id=delivery.pk, attempt=0)
    return event


def credential_event_data(credential: Credential, **extra: Any) -> dict[str, Any]:
    """The fields every credential event carries (Alloy's, plus ours)."""
    end_user = credential.end_user
    return {
        "credential_id": str(credential.pk),
        "credential_name": credential.display_name,
        "app": credential.app.slug,
        "identity": credential.identity,
        "status": credential.status,
        "user_id": end_user.external_id,
        "user_email": end_user.email,
        **extra,
    }
