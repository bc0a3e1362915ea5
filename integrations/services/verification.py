"""Verification: apply a credential to its app's protected request and act on the answer.

One path for the modal, the API, the admin and the background jobs. A 2xx marks the credential
active and records the identity; a 401 or 403 marks it invalid with the provider's reason; a
5xx, 429, timeout or connection error changes nothing and is reported as ``unavailable`` so the
caller (the job) can retry, honouring ``Retry-After``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from core.conf import conf
from core.http import outbound_request
from core.vault import VaultError, open_secret, seal_secret
from integrations.models import Credential
from integrations.services.auth import TemplateValueMissing, auth_apply
from integrations.services.events import credential_event_data, event_emit
from integrations.services.refresh import credential_refresh, credential_refresh_due

logger = logging.getLogger(__name__)

TIMEOUT = (5, 15)  # connect, read: a provider never holds a worker for long
MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class ProbeResult:
    """What the provider said, before anything is written."""

    kind: str  # "verified", "rejected" or "unavailable"
    identity: str = ""
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class VerificationOutcome:
    kind: str
    credential: Credential | None
    reason: str = ""
    retry_after: float | None = None
    already_existed: bool = False

    @property
    def verified(self) -> bool:
        return self.kind == "verified"


def _dig(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def _provider_reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:MAX_REASON_LENGTH] or response.reason or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("error_description", "message", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("description")
            if isinstance(value, str) and value:
                return value[:MAX_REASON_LENGTH]
    return f"HTTP {response.status_code} {response.reason}".strip()


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - timezone.now()).total_seconds())


def verification_probe(*, app, secret: dict[str, Any]) -> ProbeResult:
    """Send the app's verification request with ``secret`` applied. Writes nothing."""
    spec = app.verification
    try:
        applied = auth_apply(app=app, secret=secret)
    except TemplateValueMissing as exc:
        return ProbeResult(kind="rejected", reason=str(exc))
    try:
        response = outbound_request(
            spec.get("method", "GET"),
            applied.url(spec["path"]),
            headers={"Accept": "application/json", **spec.get("headers", {}), **applied.headers},
            params=applied.params,
            auth=applied.basic_auth,
            json=spec.get("body"),
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout:
        return ProbeResult(kind="unavailable", reason=f"{app.name} did not answer in time.")
    except requests.RequestException as exc:
        return ProbeResult(
            kind="unavailable", reason=f"{app.name} could not be reached ({type(exc).__name__})."
        )
    if 200 <= response.status_code < 300:
        try:
            body = response.json()
        except ValueError:
            body = {}
        success = spec.get("success")
        if success and _dig(body, success["path"]) != success["equals"]:
            detail = _dig(body, "error") or _dig(body, "message") or "the credential was refused"
            return ProbeResult(
                kind="rejected",
                reason=f"{app.name} refused the credential: {str(detail)[:MAX_REASON_LENGTH]}",
                status_code=response.status_code,
            )
        identity = next(
            (
                str(value)
                for path in spec["identity"]
                if (value := _dig(body, path)) not in (None, "")
            ),
            "",
        )
        return ProbeResult(kind="verified", identity=identity[:255], status_code=200)
    if response.status_code in (401, 403):
        return ProbeResult(
            kind="rejected",
            reason=f"{app.name} refused the credential: {_provider_reason(response)}",
            status_code=response.status_code,
        )
    return ProbeResult(
        kind="unavailable",
        reason=f"{app.name} answered {response.status_code}; we will try again.",
        status_code=response.status_code,
        retry_after=_retry_after(response) if response.status_code == 429 else None,
    )


def credential_verify(*, credential_id, actor: Actor | None = None) -> VerificationOutcome:
    """Verify a credential now and record the result (see the module docstring)."""
    actor = actor or Actor.system()
    credential = (
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(pk=credential_id)
        .first()
    )
    if credential is None:
        return VerificationOutcome(kind="skipped", credential=None, reason="Gone.")
    if credential.status == Credential.Status.REVOKED or not credential.has_secret:
        return VerificationOutcome(kind="skipped", credential=credential, reason="Revoked.")
    if credential_refresh_due(credential):
        # An expired access token is refreshed first, so verification judges the account,
        # not the token's age.
        refreshed = credential_refresh(credential_id=credential.pk, actor=actor)
        if refreshed.kind == "expired":
            return VerificationOutcome(
                kind="rejected", credential=refreshed.credential, reason=refreshed.reason
            )
        credential = refreshed.credential or credential
        if refreshed.kind in ("unavailable", "failed") and (
            credential.expires_at is not None and credential.expires_at <= timezone.now()
        ):
            # The provider could not refresh an expired token: sending the expired token would
            # earn a 401 that says nothing about the account, so try again later instead.
            return VerificationOutcome(
                kind="unavailable", credential=credential, reason=refreshed.reason
            )
    try:
        secret = open_secret(credential)
    except VaultError as exc:
        logger.error("Cannot open credential %s: %s", credential.pk, exc)
        return VerificationOutcome(kind="unavailable", credential=credential, reason=str(exc))
    probe = verification_probe(app=credential.app, secret=secret)
    with transaction.atomic():
        audit_record(
            tenant=credential.tenant,
            actor=actor,
            action="credential.verify",
            credential=credential,
            outcome="success" if probe.kind == "verified" else "failure",
            detail={"result": probe.kind, "status_code": probe.status_code},
        )
        if probe.kind == "verified":
            return _record_verified(credential, probe, secret)
        if probe.kind == "rejected":
            return _record_rejected(credential, probe)
        # updated_at moves too, so the pending sweep waits for this attempt's retries.
        Credential.objects.filter(pk=credential.pk).update(
            verification_attempts=F("verification_attempts") + 1, updated_at=timezone.now()
        )
    return VerificationOutcome(
        kind="unavailable",
        credential=credential,
        reason=probe.reason,
        retry_after=probe.retry_after,
    )


def credential_next_verification_at(credential: Credential, *, now: datetime) -> datetime | None:
    """When the re-verification sweep should look at this credential again.

    A long-lived credential (an API key, a token without expiry) is re-verified every
    ``reverify_interval_seconds`` of its app, shortened at random by up to REVERIFY_JITTER so
    that credentials connected together spread out. A token that expires without a refresh
    token is looked at when it expires (verification then marks it expired); one with a
    refresh token is kept fresh by the refresh sweep instead.
    """
    if credential.expires_at is None:
        interval = credential.app.reverify_interval_seconds
        spread = random.uniform(1 - conf.REVERIFY_JITTER, 1)  # noqa: S311
        return now + timedelta(seconds=interval * spread)
    if credential.refresh_at is None:
        return credential.expires_at
    return None


def _record_verified(
    credential: Credential, probe: ProbeResult, secret: dict[str, Any]
) -> VerificationOutcome:
    now = timezone.now()
    twin = None
    if probe.identity:
        twin = (
            Credential.objects.select_for_update()
            .filter(
                end_user_id=credential.end_user_id,
                app_id=credential.app_id,
                identity=probe.identity,
            )
            .exclude(pk=credential.pk)
            .first()
        )
    already_existed = twin is not None
    merged_from = {"replaced_credential_id": str(credential.pk)} if twin is not None else {}
    if twin is not None:
        # The same account again: it refreshes the existing credential, which keeps its id,
        # label and installations, and the new row goes away.
        seal_secret(twin, secret)
        twin.expires_at, twin.refresh_at = credential.expires_at, credential.refresh_at
        twin.scopes = credential.scopes or twin.scopes
        credential.delete()
        credential = twin
    credential.identity = probe.identity or credential.identity
    credential.status = Credential.Status.ACTIVE
    credential.last_verified_at = now
    credential.last_verification_error = ""
    credential.verification_attempts = 0
    credential.next_verification_at = credential_next_verification_at(credential, now=now)
    credential.save()
    event_emit(
        tenant=credential.tenant,
        type="credential.verified",
        data=credential_event_data(credential, already_exists=already_existed, **merged_from),
    )
    return VerificationOutcome(
        kind="verified", credential=credential, already_existed=already_existed
    )


def _record_rejected(credential: Credential, probe: ProbeResult) -> VerificationOutcome:
    credential.status = Credential.Status.INVALID
    credential.last_verification_error = probe.reason
    credential.last_verified_at = timezone.now()
    credential.next_verification_at = None
    credential.save(
        update_fields=[
            "status",
            "last_verification_error",
            "last_verified_at",
            "next_verification_at",
            "updated_at",
        ]
    )
    event_emit(
        tenant=credential.tenant,
        type="credential.verification_failed",
        data=credential_event_data(credential, reason=probe.reason),
    )
    return VerificationOutcome(kind="rejected", credential=credential, reason=probe.reason)
