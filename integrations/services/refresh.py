"""Refreshing OAuth2 tokens ahead of expiry, so that a rotating refresh token is spent once.

A token is due when it is within its app's buffer (``refresh_buffer_seconds``, 15 minutes by
default) of expiring. ``refresh_at`` is only the schedule the refresh sweep reads through its
index (the sweep pushes it forward while a refresh job runs); whether a refresh is due is always
decided from ``expires_at``.

The refresh runs under the credential's row lock; after taking it the worker re-reads the row
and skips a token another worker has just refreshed. An ``invalid_grant`` is re-checked against
the refresh token stored now before the credential is marked expired, so a race with a
reconnect never expires a good credential. A provider that is down changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from core.vault import VaultError, open_secret
from integrations.models import Credential
from integrations.services.events import credential_event_data, event_emit
from integrations.services.oauth import (
    OAuthError,
    credential_tokens_store,
    oauth_client_for,
    oauth_refresh,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshOutcome:
    kind: str  # refreshed, fresh, expired, unavailable, failed, skipped
    credential: Credential | None
    reason: str = ""


def credential_refresh_due(credential: Credential, *, now: datetime | None = None) -> bool:
    """True when the access token is within its app's refresh buffer of expiry, or past it."""
    if not credential.app.is_oauth2 or credential.expires_at is None:
        return False
    buffer = timedelta(seconds=credential.app.refresh_buffer_seconds)
    return credential.expires_at - buffer <= (now or timezone.now())


def credential_mark_expired(*, credential: Credential, reason: str, actor: Actor) -> Credential:
    """Mark expired and emit ``credential.expired`` (call inside the change's transaction)."""
    credential.status = Credential.Status.EXPIRED
    credential.last_verification_error = reason
    credential.refresh_at = None
    credential.next_verification_at = None
    credential.save(
        update_fields=[
            "status",
            "last_verification_error",
            "refresh_at",
            "next_verification_at",
            "updated_at",
        ]
    )
    audit_record(
        tenant=credential.tenant,
        actor=actor,
        action="credential.expire",
        credential=credential,
        detail={"reason": reason},
    )
    event_emit(
        tenant=credential.tenant,
        type="credential.expired",
        data=credential_event_data(credential, reason=reason),
    )
    return credential


def credential_refresh(
    *, credential_id, force: bool = False, actor: Actor | None = None
) -> RefreshOutcome:
    """Refresh a credential's access token if it is due (or ``force``)."""
    actor = actor or Actor.system()
    with transaction.atomic():
        credential = (
            Credential.objects.select_for_update(of=("self",))
            .select_related("app", "tenant", "end_user")
            .filter(pk=credential_id)
            .first()
        )
        if credential is None:
            return RefreshOutcome("skipped", None, "Gone.")
        if (
            not credential.app.is_oauth2
            or credential.status not in (Credential.Status.ACTIVE, Credential.Status.PENDING)
            or not credential.has_secret
        ):
            return RefreshOutcome("skipped", credential, "Not an active OAuth2 credential.")
        # Re-read under the lock: another worker may have refreshed it while we waited.
        if not force and not credential_refresh_due(credential):
            return RefreshOutcome("fresh", credential)
        try:
            secret = open_secret(credential)
        except VaultError as exc:
            logger.error("Cannot open credential %s: %s", credential.pk, exc)
            return RefreshOutcome("failed", credential, str(exc))
        refresh_token = secret.get("refresh_token", "")
        if not refresh_token:
            if credential.expires_at and credential.expires_at <= timezone.now():
                credential_mark_expired(
                    credential=credential,
                    reason="The access token expired and the provider gave no refresh token.",
                    actor=actor,
                )
                return RefreshOutcome("expired", credential)
            return RefreshOutcome("skipped", credential, "No refresh token.")
        try:
            client = oauth_client_for(tenant=credential.tenant, app=credential.app)
            tokens = oauth_refresh(client=client, refresh_token=refresh_token)
        except OAuthError as exc:
            return _refresh_failed(credential, exc, refresh_token, actor)
        credential_tokens_store(credential=credential, tokens=tokens, previous=secret)
        credential.last_refreshed_at = timezone.now()
        credential.status = Credential.Status.ACTIVE
        credential.save()
        audit_record(
            tenant=credential.tenant,
            actor=actor,
            action="credential.refresh",
            credential=credential,
        )
        event_emit(
            tenant=credential.tenant,
            type="credential.refreshed",
            data=credential_event_data(
                credential,
                expires_at=credential.expires_at.isoformat() if credential.expires_at else None,
            ),
        )
        return RefreshOutcome("refreshed", credential)


def _refresh_failed(
    credential: Credential, exc: OAuthError, spent_token: str, actor: Actor
) -> RefreshOutcome:
    audit_record(
        tenant=credential.tenant,
        actor=actor,
        action="credential.refresh",
        credential=credential,
        outcome="failure",
        detail={"code": exc.code, "transient": exc.transient},
    )
    if exc.transient:
        return RefreshOutcome("unavailable", credential, str(exc))
    if exc.code != "invalid_grant":
        logger.warning("Refresh of %s failed: %s", credential.pk, exc)
        return RefreshOutcome("failed", credential, str(exc))
    # Re-check against what is stored now: a reconnect may have replaced the token.
    current = Credential.objects.get(pk=credential.pk)
    try:
        stored_token = open_secret(current).get("refresh_token", "")
    except VaultError:
        stored_token = spent_token
    if stored_token and stored_token != spent_token:
        return RefreshOutcome("fresh", current, "Replaced while refreshing.")
    credential_mark_expired(
        credential=credential,
        reason=f"{credential.app.name} no longer accepts this account's authorization "
        "(invalid_grant): the user must reconnect it.",
        actor=actor,
    )
    return RefreshOutcome("expired", credential, str(exc))


def credential_secret_for_use(
    *, credential: Credential, actor: Actor, purpose: str
) -> tuple[Credential, dict[str, Any]]:
    """The credential's secret for one request, refreshed first when due; the use is audited."""
    if credential_refresh_due(credential):
        outcome = credential_refresh(credential_id=credential.pk, actor=actor)
        if outcome.credential is not None:
            credential = outcome.credential
    secret = open_secret(credential)
    audit_record(
        tenant=credential.tenant,
        actor=actor,
        action=f"credential.use.{purpose}",
        credential=credential,
    )
    return credential, secret
