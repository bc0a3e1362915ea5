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
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from core.prepared import PreparedRead
from core.vault import VaultError
from integrations.models import Credential
from integrations.services.credentials import credential_mark_expired, credential_mark_refreshed
from integrations.services.oauth import OAuthError, oauth_client_for, oauth_refresh
from integrations.services.secrets import (
    Purpose,
    SecretUse,
    credential_secret_open,
    credential_secret_use,
)

logger = logging.getLogger(__name__)


class RefreshKind(StrEnum):
    REFRESHED = "refreshed"
    FRESH = "fresh"  # not due (or refreshed meanwhile by another worker)
    EXPIRED = "expired"
    UNAVAILABLE = "unavailable"  # the provider is down, slow or busy: try again
    FAILED = "failed"
    SKIPPED = "skipped"  # gone, not an active OAuth2 credential, or no refresh token


@dataclass(frozen=True)
class RefreshOutcome:
    kind: RefreshKind
    credential: Credential | None
    reason: str = ""


# What verification and refresh never read of an app (how the modal shows it and how a sign-in
# starts): left out of the jobs' reads, which run for every credential every day.
APP_COLUMNS_JOBS_SKIP = tuple(
    f"app__{name}"
    for name in (
        "description",
        "icon",
        "icon_file",
        "icon_file_type",
        "icon_digest",
        "docs_url",
        "authorization_url",
        "authorization_params",
        "pkce",
        "revocation_url",
        "revocation_method",
        "add_account_prompt",
        "popup_width",
        "popup_height",
        "is_enabled",
        "created_at",
        "updated_at",
    )
)


def credential_refresh_due(credential: Credential, *, now: datetime | None = None) -> bool:
    """True when the access token is within its app's refresh buffer of expiry, or past it."""
    if not credential.app.is_oauth2 or credential.expires_at is None:
        return False
    buffer = timedelta(seconds=credential.app.refresh_buffer_seconds)
    return credential.expires_at - buffer <= (now or timezone.now())


# The refresh's read of its row, under the lock: compiled once (core/prepared.py), since the
# refresh sweep runs it for every OAuth2 credential about once an hour.
_locked_read = PreparedRead(
    lambda pk: (
        Credential.objects.select_for_update(of=("self",))
        .select_related("app", "tenant", "end_user")
        .defer(*APP_COLUMNS_JOBS_SKIP, "tenant__secret_key_id", "tenant__secret_ciphertext")
        .filter(pk=pk)
    ),
    pk=Credential._meta.pk,
)


def credential_refresh(
    *, credential_id, force: bool = False, actor: Actor | None = None
) -> RefreshOutcome:
    """Refresh a credential's access token if it is due (or ``force``)."""
    actor = actor or Actor.system()
    with transaction.atomic():
        found = _locked_read.run(pk=credential_id)
        if not found:
            return RefreshOutcome(RefreshKind.SKIPPED, None, "Gone.")
        (credential,) = found
        if (
            not credential.app.is_oauth2
            or credential.status not in (Credential.Status.ACTIVE, Credential.Status.PENDING)
            or not credential.has_secret
        ):
            return RefreshOutcome(
                RefreshKind.SKIPPED, credential, "Not an active OAuth2 credential."
            )
        # Re-read under the lock: another worker may have refreshed it while we waited.
        if not force and not credential_refresh_due(credential):
            return RefreshOutcome(RefreshKind.FRESH, credential)
        try:
            secret = credential_secret_open(
                credential=credential, actor=actor, purpose=Purpose.REFRESH
            )
        except VaultError as exc:
            logger.error("Cannot open credential %s: %s", credential.pk, exc)
            return RefreshOutcome(RefreshKind.FAILED, credential, str(exc))
        refresh_token = secret.get("refresh_token", "")
        if not refresh_token:
            if credential.expires_at and credential.expires_at <= timezone.now():
                credential_mark_expired(
                    credential=credential,
                    reason="The access token expired and the provider gave no refresh token.",
                    actor=actor,
                )
                return RefreshOutcome(RefreshKind.EXPIRED, credential)
            return RefreshOutcome(RefreshKind.SKIPPED, credential, "No refresh token.")
        try:
            client = oauth_client_for(tenant=credential.tenant, app=credential.app)
            tokens = oauth_refresh(client=client, refresh_token=refresh_token)
        except OAuthError as exc:
            return _refresh_failed(credential, exc, refresh_token, actor)
        credential_mark_refreshed(
            credential=credential, tokens=tokens, previous=secret, actor=actor
        )
        return RefreshOutcome(RefreshKind.REFRESHED, credential)


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
        return RefreshOutcome(RefreshKind.UNAVAILABLE, credential, str(exc))
    if exc.code != "invalid_grant":
        logger.warning("Refresh of %s failed: %s", credential.pk, exc)
        return RefreshOutcome(RefreshKind.FAILED, credential, str(exc))
    # Re-check against what is stored now: a reconnect may have replaced the token.
    current = Credential.objects.select_related("tenant").get(pk=credential.pk)
    try:
        stored = credential_secret_open(credential=current, actor=actor, purpose=Purpose.REFRESH)
        stored_token = stored.get("refresh_token", "")
    except VaultError:
        stored_token = spent_token
    if stored_token and stored_token != spent_token:
        return RefreshOutcome(RefreshKind.FRESH, current, "Replaced while refreshing.")
    credential_mark_expired(
        credential=credential,
        reason=f"{credential.app.name} no longer accepts this account's authorization "
        "(invalid_grant): the user must reconnect it.",
        actor=actor,
    )
    return RefreshOutcome(RefreshKind.EXPIRED, credential, str(exc))


def credential_secret_for_use(
    *, credential: Credential, actor: Actor, purpose: Purpose
) -> tuple[Credential, dict[str, Any]]:
    """The credential's secret for one use, refreshed first when due; the open is audited."""
    if credential_refresh_due(credential):
        outcome = credential_refresh(credential_id=credential.pk, actor=actor)
        if outcome.credential is not None:
            credential = outcome.credential
    return credential, credential_secret_open(credential=credential, actor=actor, purpose=purpose)


def credential_secret_for_call(
    *, credential: Credential, actor: Actor, purpose: Purpose
) -> tuple[Credential, SecretUse]:
    """The credential's secret for one outbound call, refreshed first when due.

    The use is audited once, with the call's result, when the caller records it.
    """
    if credential_refresh_due(credential):
        outcome = credential_refresh(credential_id=credential.pk, actor=actor)
        if outcome.credential is not None:
            credential = outcome.credential
    return credential, credential_secret_use(credential=credential, actor=actor, purpose=purpose)
