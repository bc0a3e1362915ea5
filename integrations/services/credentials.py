"""THE credential: its states and every transition between them.

A credential exists only once its provider accepted it (``verification.credential_connect``
decides that at entry); from then on it changes only through the functions below. Each
transition takes the credential's row lock, and writes the change, its audit entry and its
outbox event in one transaction, so the event stream a tenant syncs from and the rows cannot
disagree, and one credential's events are in the order its changes committed:

=============================  ==============================  ================================
transition                     status afterwards               events
=============================  ==============================  ================================
credential_create              active                          created, verified
credential_mark_verified       active                          verified
credential_mark_invalid        invalid                         verification_failed
credential_note_unavailable    unchanged (a retry is due)      none
credential_mark_refreshed      active                          refreshed
credential_mark_expired        expired                         expired
credential_reconnect           active (same id, name, flows)   reconnected
credential_rename              unchanged                       renamed
credential_revoke              revoked                         revoked
credential_delete              (gone)                          revoked (unless it was), deleted
=============================  ==============================  ================================

Secrets are sealed and opened through ``secrets.py`` only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import AuditLogEntry, EndUser
from accounts.services.audit import Actor, audit_entry, audit_record_many
from core.conf import conf
from core.errors import Conflict, Invalid, NotFound
from core.prepared import PreparedRead
from core.redact import redact
from core.validators import CONTROL_CHARACTERS
from core.vault import VaultError
from core.writes import row_update
from integrations.models import MAX_LABEL_LENGTH, App, Credential, Installation
from integrations.services.events import credential_event_data, event_emit
from integrations.services.oauth import OAuthError, TokenSet, oauth_client_for, oauth_revoke
from integrations.services.secrets import (
    Purpose,
    SecretUse,
    credential_secret_clear,
    credential_secret_open,
    credential_secret_seal,
    credential_tokens_seal,
)

MAX_FIELD_LENGTH = 4096
# What a verification's result changes on the row (saved alone: the secret is not rewritten).
# What a refresh writes: the sealed token set with what derives from it
# (``credential_tokens_seal``), and the refresh's own columns.
REFRESH_FIELDS = [
    "secret_key_id",
    "secret_ciphertext",
    "secret_hint",
    "scopes",
    "expires_at",
    "refresh_at",
    "last_refreshed_at",
    "status",
    "updated_at",
]
VERIFICATION_FIELDS = [
    "identity",
    "status",
    "last_verified_at",
    "last_verification_error",
    "verification_attempts",
    "next_verification_at",
    "updated_at",
]


def credential_fields_clean(
    *, app: App, fields: dict[str, Any], with_help: bool = False
) -> dict[str, str]:
    """Validate an API-key or basic form against the app's fields; errors name each field.

    A form shows each field's help beside it, so its errors do not repeat it; a caller with no
    form (the API) asks ``with_help`` to have the help follow a format error.
    """
    if app.is_oauth2:
        raise ValidationError(
            f"{app.name} connects through OAuth2: open the connect modal to sign in instead.",
            code="oauth2_app",
        )
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    known = {spec["name"] for spec in app.fields}
    for name in fields:
        if name not in known:
            errors[name] = f"{app.name} has no field '{name}'."
    for spec in app.fields:
        name, label = spec["name"], spec["label"]
        raw = fields.get(name, "")
        value = raw.strip() if isinstance(raw, str) else raw
        if value in (None, ""):
            if spec.get("required", True):
                errors[name] = f"{label} is required."
            continue
        if not isinstance(value, str):
            errors[name] = f"{label} must be text."
        elif CONTROL_CHARACTERS.search(value):
            errors[name] = f"{label} must not contain control characters (NUL, CR, LF, tab…)."
        elif len(value) > MAX_FIELD_LENGTH:
            errors[name] = f"{label} is too long (at most {MAX_FIELD_LENGTH} characters)."
        elif spec.get("pattern") and not re.fullmatch(spec["pattern"], value):
            errors[name] = f"{label} is not in the expected format." + (
                f" {spec['help']}" if with_help and spec.get("help") else ""
            )
        else:
            clean[name] = value
    if errors:
        raise ValidationError(errors, code="invalid_fields")
    return clean


@dataclass(frozen=True)
class NewSecret:
    """What an entry or a reconnect brings: an API-key/basic secret, or an OAuth2 token set."""

    secret: dict[str, Any] | None = None
    tokens: TokenSet | None = None

    @property
    def plain(self) -> dict[str, Any]:
        """The secret as the verification request applies it."""
        return self.tokens.secret if self.tokens is not None else dict(self.secret or {})


def label_clean(label: str) -> str:
    """One line, single spaces, at most MAX_LABEL_LENGTH characters (else a ValidationError)."""
    label = " ".join((label or "").split())
    if CONTROL_CHARACTERS.search(label):
        raise ValidationError(
            {"label": "Must not contain control characters."}, code="invalid_characters"
        )
    if len(label) > MAX_LABEL_LENGTH:
        raise ValidationError(
            {"label": f"At most {MAX_LABEL_LENGTH} characters."}, code="label_too_long"
        )
    return label


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


def _seal(credential: Credential, new: NewSecret) -> None:
    if new.tokens is not None:
        credential_tokens_seal(credential=credential, tokens=new.tokens)
    else:
        credential_secret_seal(credential=credential, secret=new.secret or {})


def _locked_read(*related: str) -> PreparedRead:
    return PreparedRead(
        lambda pk: (
            Credential.objects.select_for_update(of=("self",))
            .select_related("end_user", "tenant", *related)
            .defer("tenant__secret_key_id", "tenant__secret_ciphertext")  # the tenant's, unneeded
            .filter(pk=pk)
        ),
        pk=Credential._meta.pk,
    )


# Compiled once (core/prepared.py): every verification job takes this lock.
_locked_with_app = _locked_read("app")
_locked_without_app = _locked_read()


def _locked(credential: Credential) -> Credential:
    """The row again, under its lock, with what the events and audit entries name.

    The app the caller already read is kept rather than read again (a job's transition runs
    in every verification, and the app's columns are most of what it would read).
    """
    app_read = Credential.app.is_cached(credential)
    found = (_locked_without_app if app_read else _locked_with_app).run(pk=credential.pk)
    if not found:
        raise NotFound("That account is no longer connected.", code="credential_not_found")
    (locked,) = found
    if app_read and locked.app_id == credential.app_id:
        locked.app = credential.app
    return locked


class CredentialRevoked(Conflict):
    """The credential was revoked meanwhile: what its secret was checked for no longer counts."""


def _still_live(credential: Credential) -> Credential:
    """Under the lock: a verification's answer about a revoked credential changes nothing."""
    if credential.status == Credential.Status.REVOKED or not credential.has_secret:
        raise CredentialRevoked(
            "That account was disconnected meanwhile.", code="credential_revoked"
        )
    return credential


def _verified_now(credential: Credential, identity: str, *, now: datetime) -> None:
    credential.identity = identity or credential.identity
    credential.status = Credential.Status.ACTIVE
    credential.last_verified_at = now
    credential.last_verification_error = ""
    credential.verification_attempts = 0
    credential.next_verification_at = credential_next_verification_at(credential, now=now)


def _record(
    credential: Credential,
    *,
    actor: Actor,
    action: str,
    events: tuple[str, ...] = (),
    outcome: str = AuditLogEntry.Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
    use: SecretUse | None = None,
    **event_extra: Any,
) -> None:
    """The audit entry of a transition and its outbox events, in the caller's transaction.

    ``use``, the opening of the secret whose check led to the transition, is recorded in the
    same transaction, with the same outcome and detail, in the same insert.
    """
    entry = audit_entry(
        tenant_id=credential.tenant_id,
        actor=actor,
        action=action,
        credential_id=credential.pk,
        outcome=outcome,
        detail=detail,
    )
    uses = [] if use is None else [use.entry(outcome=outcome, detail=detail or {})]
    audit_record_many([*uses, entry])
    for type in events:
        event_emit(
            tenant=credential.tenant,
            type=type,
            data=credential_event_data(credential, **event_extra),
        )


@transaction.atomic
def credential_create(
    *, end_user: EndUser, app: App, new: NewSecret, identity: str, label: str, actor: Actor
) -> Credential:
    """A verified account becomes a credential: active, with the identity the provider gave.

    Raises IntegrityError when the end user already has this identity for the app (the
    caller reconnects that credential instead).
    """
    now = timezone.now()
    credential = Credential(
        tenant_id=end_user.tenant_id,
        end_user=end_user,
        app=app,
        label=label_clean(label),
        created_at=now,
    )
    _seal(credential, new)
    _verified_now(credential, identity[:255], now=now)
    credential.save()
    credential.tenant = end_user.tenant
    _record(
        credential,
        actor=actor,
        action="credential.create",
        events=("credential.created", "credential.verified"),
    )
    return credential


@transaction.atomic
def credential_mark_verified(
    *, credential: Credential, identity: str, actor: Actor, use: SecretUse | None = None
) -> Credential:
    """The provider accepted the stored secret again: active, identity recorded.

    An identity already held by another of the user's credentials for the app (possible only
    when this one had none) is not copied, so the two stay distinct accounts. Raises NotFound or
    CredentialRevoked when the credential was deleted or revoked while the provider answered.
    """
    credential = _still_live(_locked(credential))
    if (
        identity
        and identity != credential.identity
        and Credential.objects.filter(
            end_user_id=credential.end_user_id, app_id=credential.app_id, identity=identity
        )
        .exclude(pk=credential.pk)
        .exists()
    ):
        identity = ""
    _verified_now(credential, identity[:255], now=timezone.now())
    row_update(credential, VERIFICATION_FIELDS)
    _record(
        credential,
        actor=actor,
        action="credential.verify",
        detail={"result": "verified"},
        events=("credential.verified",),
        use=use,
    )
    return credential


@transaction.atomic
def credential_mark_invalid(
    *,
    credential: Credential,
    reason: str,
    actor: Actor,
    status_code: int | None = None,
    use: SecretUse | None = None,
) -> Credential:
    """The provider clearly refused the stored secret (401/403): invalid, with its reason.

    ``reason`` comes redacted of the secret (``verification_probe``); token-looking strings are
    removed here again, as it is stored, audited and sent."""
    reason = redact(reason)
    credential = _still_live(_locked(credential))
    credential.status = Credential.Status.INVALID
    credential.last_verification_error = reason
    credential.last_verified_at = timezone.now()
    credential.next_verification_at = None
    row_update(credential, VERIFICATION_FIELDS)
    _record(
        credential,
        actor=actor,
        action="credential.verify",
        outcome=AuditLogEntry.Outcome.FAILURE,
        detail={"result": "rejected", "status_code": status_code},
        events=("credential.verification_failed",),
        reason=reason,
        use=use,
    )
    return credential


@transaction.atomic
def credential_note_unavailable(
    *,
    credential: Credential,
    actor: Actor,
    status_code: int | None = None,
    use: SecretUse | None = None,
) -> None:
    """The provider did not answer: the status stays; the attempt is counted and audited.

    ``updated_at`` moves too, so the pending sweep waits for this attempt's retries.
    """
    credential = _locked(credential)
    Credential.objects.filter(pk=credential.pk).update(
        verification_attempts=F("verification_attempts") + 1, updated_at=timezone.now()
    )
    _record(
        credential,
        actor=actor,
        action="credential.verify",
        outcome=AuditLogEntry.Outcome.FAILURE,
        detail={"result": "unavailable", "status_code": status_code},
        use=use,
    )


def credential_mark_refreshed(
    *, credential: Credential, tokens: TokenSet, previous: dict[str, Any], actor: Actor
) -> Credential:
    """A new token set from the provider (call under the row lock the refresh holds)."""
    credential_tokens_seal(credential=credential, tokens=tokens, previous=previous)
    credential.last_refreshed_at = timezone.now()
    credential.status = Credential.Status.ACTIVE
    row_update(credential, REFRESH_FIELDS)
    _record(
        credential,
        actor=actor,
        action="credential.refresh",
        events=("credential.refreshed",),
        expires_at=credential.expires_at.isoformat() if credential.expires_at else None,
    )
    return credential


def credential_mark_expired(*, credential: Credential, reason: str, actor: Actor) -> Credential:
    """The grant is gone (call under the row lock the refresh or verification holds)."""
    reason = redact(reason)
    credential.status = Credential.Status.EXPIRED
    credential.last_verification_error = reason
    credential.refresh_at = None
    credential.next_verification_at = None
    credential.save()
    _record(
        credential,
        actor=actor,
        action="credential.expire",
        detail={"reason": reason},
        events=("credential.expired",),
        reason=reason,
    )
    return credential


class IdentityMismatch(Invalid):
    """The new secret belongs to another account than the credential it was meant to replace."""


@transaction.atomic
def credential_reconnect(
    *,
    credential: Credential,
    new: NewSecret,
    identity: str,
    actor: Actor,
    label: str = "",
    same_identity_again: bool = False,
) -> Credential:
    """Put a verified new secret on an existing credential: its id, label and installations stay.

    Refused (IdentityMismatch, nothing changed) when the provider says the new secret is
    another account than the one this credential holds. ``same_identity_again`` records that
    the end user connected an account they already had (the audit entry says which).
    """
    credential = _locked(credential)
    if credential.identity and identity and identity != credential.identity:
        name = credential.app.name
        raise IdentityMismatch(
            f"You signed in to {name} as {identity}, but this account is "
            f"{credential.identity}. Sign in as {credential.identity} to reconnect it, or add "
            f"{identity} as another account. Nothing was changed.",
            code="identity_mismatch",
        )
    _seal(credential, new)
    _verified_now(credential, identity[:255], now=timezone.now())
    if label and not credential.label:
        credential.label = label_clean(label)
    credential.save()
    _record(
        credential,
        actor=actor,
        action="credential.reconnect",
        detail={"same_identity_again": same_identity_again},
        events=("credential.reconnected",),
        already_exists=same_identity_again,
    )
    return credential


@transaction.atomic
def credential_rename(*, credential: Credential, label: str, actor: Actor) -> Credential:
    label = label_clean(label)
    credential = _locked(credential)
    credential.label = label
    credential.save(update_fields=["label", "updated_at"])
    _record(credential, actor=actor, action="credential.rename", events=("credential.renamed",))
    return credential


def credential_revoke_at_provider(*, credential: Credential, actor: Actor) -> bool:
    """Revoke the OAuth2 tokens at the provider where the app supports it.

    Runs outside any transaction (it is a network call); a provider that is down does not stop
    the local revocation, which is what protects the account.
    """
    app = credential.app
    if not app.is_oauth2 or not app.supports_revocation or not credential.has_secret:
        return False
    try:
        client = oauth_client_for(tenant=credential.tenant, app=app)
        secret = credential_secret_open(credential=credential, actor=actor, purpose=Purpose.REVOKE)
    except (VaultError, OAuthError):
        return False
    revoked = False
    if secret.get("refresh_token"):
        revoked = oauth_revoke(
            client=client, token=secret["refresh_token"], token_type_hint="refresh_token"
        )
    if secret.get("access_token"):
        revoked = oauth_revoke(client=client, token=secret["access_token"]) or revoked
    return revoked


def credential_revoke(*, credential: Credential, actor: Actor, reason: str = "") -> Credential:
    """Revoke at the provider where supported, then destroy the secret and disable the
    installations that used it (they say why). Safe to call twice."""
    credential = (
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(pk=credential.pk)
        .first()
    )
    if credential is None:
        raise NotFound("That account is no longer connected.", code="credential_not_found")
    if credential.status == Credential.Status.REVOKED:
        return credential
    at_provider = credential_revoke_at_provider(credential=credential, actor=actor)
    return _revoke_locally(credential, actor=actor, reason=reason, at_provider=at_provider)


@transaction.atomic
def _revoke_locally(
    credential: Credential, *, actor: Actor, reason: str, at_provider: bool
) -> Credential:
    credential = _locked(credential)
    if credential.status == Credential.Status.REVOKED:
        return credential
    credential_secret_clear(credential=credential)
    credential.status = Credential.Status.REVOKED
    credential.next_verification_at = None
    credential.save()
    Installation.objects.filter(
        pk__in=credential.installation_links.values("installation_id"), enabled=True
    ).update(
        enabled=False,
        disabled_reason=(
            f"The {credential.app.name} account {credential.display_name} was disconnected."
        ),
        updated_at=timezone.now(),
    )
    _record(
        credential,
        actor=actor,
        action="credential.revoke",
        detail={"reason": reason, "revoked_at_provider": at_provider},
        events=("credential.revoked",),
        reason=reason,
        revoked_at_provider=at_provider,
    )
    return credential


def credential_delete(*, credential: Credential, actor: Actor) -> dict[str, Any]:
    """Disconnect for good: revoke (at the provider too), then remove the credential.

    Installations that used it are disabled first and say why. Returns the data of the
    ``credential.deleted`` event, which the modal also hands to the page as
    did-remove-authorization.
    """
    credential_revoke(credential=credential, actor=actor, reason="Disconnected.")
    with transaction.atomic():
        credential = _locked(credential)
        _record(credential, actor=actor, action="credential.delete", events=("credential.deleted",))
        data = credential_event_data(credential)
        credential.delete()
    return data
