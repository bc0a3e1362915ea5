"""Verification: apply a credential to its app's protected request and act on the answer.

One timing rule for every caller, written here once:

- **At entry** (the modal's form and sign-in, the API's ``POST /credentials``, a reconnect),
  ``credential_connect`` asks the provider once, inline, within the outbound timeout, before
  any credential exists. A 2xx creates the credential (or updates the one that already holds
  that identity, or the one being reconnected); a 401/403 or a refused token is reported with
  the provider's reason and stores nothing; a 5xx, 429, timeout or connection error is
  reported as ``unavailable`` (try again shortly) and stores nothing either. Nobody waits on
  a job, and nothing sleeps.
- **For an existing credential** (the re-verification sweep, the admin's "Verify now", the
  API's ``/verify``, the modal's "Check again"), ``credential_verify`` asks inline as well; a
  2xx marks it active, a 401/403 invalid with the provider's reason, and ``unavailable``
  changes nothing (the job that called it retries, honouring ``Retry-After``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import requests
from django.db import IntegrityError
from django.utils import timezone

from accounts.models import EndUser
from accounts.services.audit import Actor
from core.conf import conf
from core.errors import NotFound
from core.http import outbound_request
from core.prepared import PreparedRead
from core.redact import redact
from core.vault import VaultError
from integrations.models import App, Credential
from integrations.services.auth import TemplateValueMissing, auth_apply
from integrations.services.credentials import (
    CredentialRevoked,
    NewSecret,
    credential_create,
    credential_mark_invalid,
    credential_mark_verified,
    credential_note_unavailable,
    credential_reconnect,
)
from integrations.services.refresh import (
    APP_COLUMNS_JOBS_SKIP,
    RefreshKind,
    credential_refresh,
    credential_refresh_due,
)
from integrations.services.secrets import Purpose, credential_secret_use, secret_values

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500


class ProbeKind(StrEnum):
    VERIFIED = "verified"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ProbeResult:
    """What the provider said, before anything is written.

    ``reason`` is a whole sentence for a refusal (the provider's own words), and for a provider
    that did not answer a fragment that the caller completes with what happens next.
    """

    kind: ProbeKind
    identity: str = ""
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None


class VerifyKind(StrEnum):
    VERIFIED = "verified"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    SKIPPED = "skipped"  # gone, revoked, or without a secret


@dataclass(frozen=True)
class VerificationOutcome:
    kind: VerifyKind
    credential: Credential | None
    reason: str = ""
    retry_after: float | None = None

    @property
    def verified(self) -> bool:
        return self.kind == VerifyKind.VERIFIED


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


def _sentence(text: str) -> str:
    """A provider's words end with a full stop, so that ours can follow them."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


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


def verification_probe(*, app: App, secret: dict[str, Any]) -> ProbeResult:
    """Send the app's verification request with ``secret`` applied. Writes nothing.

    What the provider said comes back redacted of the secret (a provider may echo the key it
    refused), so no caller can store, log or show it.
    """
    result = _probe(app=app, secret=secret)
    values = secret_values(app=app, secret=secret)
    return replace(
        result, reason=redact(result.reason, values), identity=redact(result.identity, values)
    )


def _probe(*, app: App, secret: dict[str, Any]) -> ProbeResult:
    spec = app.verification
    try:
        applied = auth_apply(app=app, secret=secret)
    except TemplateValueMissing as exc:
        return ProbeResult(kind=ProbeKind.REJECTED, reason=str(exc))
    try:
        response = outbound_request(
            spec.get("method", "GET"),
            applied.url(spec["path"]),
            headers={"Accept": "application/json", **spec.get("headers", {}), **applied.headers},
            params=applied.params,
            auth=applied.basic_auth,
            json=spec.get("body"),
            timeout=conf.OUTBOUND_TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout:
        return ProbeResult(kind=ProbeKind.UNAVAILABLE, reason=f"{app.name} did not answer in time")
    except requests.RequestException as exc:
        return ProbeResult(
            kind=ProbeKind.UNAVAILABLE,
            reason=f"{app.name} could not be reached ({type(exc).__name__})",
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
                kind=ProbeKind.REJECTED,
                reason=_sentence(
                    f"{app.name} refused the credential: {str(detail)[:MAX_REASON_LENGTH]}"
                ),
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
        return ProbeResult(kind=ProbeKind.VERIFIED, identity=identity[:255], status_code=200)
    if response.status_code in (401, 403):
        return ProbeResult(
            kind=ProbeKind.REJECTED,
            reason=_sentence(f"{app.name} refused the credential: {_provider_reason(response)}"),
            status_code=response.status_code,
        )
    return ProbeResult(
        kind=ProbeKind.UNAVAILABLE,
        reason=f"{app.name} answered HTTP {response.status_code}",
        status_code=response.status_code,
        retry_after=_retry_after(response) if response.status_code in (429, 503) else None,
    )


# Its app only: the transition re-reads the row under its lock with what events name. Compiled
# once (core/prepared.py): the jobs run it for every credential, every day.
_credential_read = PreparedRead(
    lambda pk: Credential.objects.select_related("app").defer(*APP_COLUMNS_JOBS_SKIP).filter(pk=pk),
    pk=Credential._meta.pk,
)


def credential_verify(*, credential_id, actor: Actor | None = None) -> VerificationOutcome:
    """Verify an existing credential now and record the result (see the module docstring)."""
    actor = actor or Actor.system()
    found = _credential_read.run(pk=credential_id)
    if not found:
        return VerificationOutcome(VerifyKind.SKIPPED, None, "Gone.")
    (credential,) = found
    if credential.status == Credential.Status.REVOKED or not credential.has_secret:
        return VerificationOutcome(VerifyKind.SKIPPED, credential, "Revoked.")
    if credential.status == Credential.Status.EXPIRED and credential.app.is_oauth2:
        # The grant is gone: its token would earn a 401 that says nothing new about the
        # account, so nothing is sent and the status stays; only a reconnect brings it back.
        return VerificationOutcome(
            VerifyKind.REJECTED, credential, credential.last_verification_error or "Expired."
        )
    if credential_refresh_due(credential):
        # An expired access token is refreshed first, so verification judges the account,
        # not the token's age.
        refreshed = credential_refresh(credential_id=credential.pk, actor=actor)
        if refreshed.kind == RefreshKind.EXPIRED:
            return VerificationOutcome(VerifyKind.REJECTED, refreshed.credential, refreshed.reason)
        credential = refreshed.credential or credential
        if refreshed.kind in (RefreshKind.UNAVAILABLE, RefreshKind.FAILED) and (
            credential.expires_at is not None and credential.expires_at <= timezone.now()
        ):
            # The provider could not refresh an expired token: sending the expired token would
            # earn a 401 that says nothing about the account, so try again later instead.
            return VerificationOutcome(VerifyKind.UNAVAILABLE, credential, refreshed.reason)
    try:
        # Refreshed above when due: open it as it is now, without asking the provider again.
        # The use is audited with the result, in the transaction that records it.
        use = credential_secret_use(credential=credential, actor=actor, purpose=Purpose.VERIFY)
    except VaultError as exc:
        logger.error("Cannot open credential %s: %s", credential.pk, exc)
        return VerificationOutcome(VerifyKind.UNAVAILABLE, credential, str(exc))
    probe = verification_probe(app=credential.app, secret=use.secret)
    try:
        if probe.kind == ProbeKind.VERIFIED:
            credential = credential_mark_verified(
                credential=credential, identity=probe.identity, actor=actor, use=use
            )
            return VerificationOutcome(VerifyKind.VERIFIED, credential)
        if probe.kind == ProbeKind.REJECTED:
            credential = credential_mark_invalid(
                credential=credential,
                reason=probe.reason,
                actor=actor,
                status_code=probe.status_code,
                use=use,
            )
            return VerificationOutcome(VerifyKind.REJECTED, credential, probe.reason)
        credential_note_unavailable(
            credential=credential, actor=actor, status_code=probe.status_code, use=use
        )
    except (NotFound, CredentialRevoked) as exc:
        # Deleted or revoked while the provider answered: its answer no longer counts.
        use.record(
            outcome="failure",
            detail={"result": "skipped"},
            deleted=isinstance(exc, NotFound),
        )
        return VerificationOutcome(VerifyKind.SKIPPED, None, exc.message)
    return VerificationOutcome(
        VerifyKind.UNAVAILABLE, credential, probe.reason, retry_after=probe.retry_after
    )


# --- Entry: a connection attempt becomes a credential only once the provider accepts it -------


class ConnectKind(StrEnum):
    CONNECTED = "connected"  # a new credential
    ALREADY_CONNECTED = "already_connected"  # the same identity again: that credential updated
    RECONNECTED = "reconnected"  # the credential being reconnected holds the new secret
    REJECTED = "rejected"  # the provider refused the secret: nothing stored
    UNAVAILABLE = "unavailable"  # the provider did not answer: nothing stored, try again soon
    IDENTITY_MISMATCH = "identity_mismatch"  # a reconnect with another account: nothing changed


@dataclass(frozen=True)
class Connection:
    """How a connection attempt ended. ``credential`` is the account it connected, updated or
    reconnected, or (for a failed reconnect) the account that stayed as it was."""

    kind: ConnectKind
    credential: Credential | None = None
    reason: str = ""
    identity: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind in (
            ConnectKind.CONNECTED,
            ConnectKind.ALREADY_CONNECTED,
            ConnectKind.RECONNECTED,
        )

    @property
    def already_existed(self) -> bool:
        return self.kind == ConnectKind.ALREADY_CONNECTED


def credential_connect(
    *,
    end_user: EndUser,
    app: App,
    new: NewSecret,
    actor: Actor,
    label: str = "",
    reconnect: Credential | None = None,
) -> Connection:
    """The entry rule (see the module docstring): ask the provider, then create, update or
    reconnect, or store nothing and say why. The caller hands back OAuth2 tokens it will not
    keep (``ok`` is false)."""
    probe = verification_probe(app=app, secret=new.plain)
    if probe.kind == ProbeKind.REJECTED:
        return Connection(ConnectKind.REJECTED, reconnect, probe.reason)
    if probe.kind == ProbeKind.UNAVAILABLE:
        return Connection(
            ConnectKind.UNAVAILABLE, reconnect, probe.reason, retry_after=probe.retry_after
        )
    if reconnect is not None:
        holder = _holder_of(end_user=end_user, app=app, identity=probe.identity)
        if (reconnect.identity and probe.identity and probe.identity != reconnect.identity) or (
            holder is not None and holder.pk != reconnect.pk
        ):
            return Connection(ConnectKind.IDENTITY_MISMATCH, reconnect, identity=probe.identity)
        credential = credential_reconnect(
            credential=reconnect, new=new, identity=probe.identity, actor=actor
        )
        return Connection(ConnectKind.RECONNECTED, credential, identity=credential.identity)
    twin = _holder_of(end_user=end_user, app=app, identity=probe.identity)
    if twin is None:
        try:
            credential = credential_create(
                end_user=end_user,
                app=app,
                new=new,
                identity=probe.identity,
                label=label,
                actor=actor,
            )
            return Connection(ConnectKind.CONNECTED, credential, identity=credential.identity)
        except IntegrityError:
            # The same account was connected concurrently: update that one instead.
            twin = _holder_of(end_user=end_user, app=app, identity=probe.identity)
            if twin is None:
                raise
    credential = credential_reconnect(
        credential=twin,
        new=new,
        identity=probe.identity,
        actor=actor,
        label=label,
        same_identity_again=True,
    )
    return Connection(ConnectKind.ALREADY_CONNECTED, credential, identity=credential.identity)


def _holder_of(*, end_user: EndUser, app: App, identity: str) -> Credential | None:
    if not identity:
        return None
    return (
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(tenant_id=end_user.tenant_id, end_user=end_user, app=app, identity=identity)
        .first()
    )
