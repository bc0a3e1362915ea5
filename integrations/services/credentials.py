"""Connected accounts: creating them from an app's form, revoking them, reading their secrets.

A credential's secret is opened only here and in the services that use it for one request
(verification, refresh, the proxy); each such use is written to the audit log.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import EndUser
from accounts.services.audit import Actor, audit_record
from core.vault import VaultError, clear_secret, open_secret, seal_secret
from integrations.models import App, Credential, Installation
from integrations.services.events import credential_event_data, event_emit
from integrations.services.jobs import verification_enqueue

MAX_FIELD_LENGTH = 4096


def credential_fields_clean(*, app: App, fields: dict[str, Any]) -> dict[str, str]:
    """Validate an API-key or basic form against the app's fields; errors name each field."""
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
        elif len(value) > MAX_FIELD_LENGTH:
            errors[name] = f"{label} is too long (at most {MAX_FIELD_LENGTH} characters)."
        elif spec.get("pattern") and not re.fullmatch(spec["pattern"], value):
            errors[name] = f"This does not look like a {label}." + (
                f" {spec['help']}" if spec.get("help") else ""
            )
        else:
            clean[name] = value
    if errors:
        raise ValidationError(errors, code="invalid_fields")
    return clean


def secret_hint(*, app: App, secret: dict[str, Any]) -> str:
    """The last four characters of the main secret, when it is long enough to hide the rest."""
    names = app.secret_field_names if not app.is_oauth2 else []
    value = secret.get(names[0], "") if names else ""
    return f"…{value[-4:]}" if isinstance(value, str) and len(value) >= 16 else ""


@transaction.atomic
def credential_create_from_fields(
    *, end_user: EndUser, app: App, fields: dict[str, Any], label: str = "", actor: Actor
) -> Credential:
    """Store an API-key or basic credential, pending until its verification answers."""
    secret = credential_fields_clean(app=app, fields=fields)
    credential = Credential(
        tenant_id=end_user.tenant_id,
        end_user=end_user,
        app=app,
        label=label.strip()[:120],
        status=Credential.Status.PENDING,
        secret_hint=secret_hint(app=app, secret=secret),
    )
    seal_secret(credential, secret)
    credential.save()
    audit_record(
        tenant=end_user.tenant, actor=actor, action="credential.create", credential=credential
    )
    event_emit(
        tenant=end_user.tenant, type="credential.created", data=credential_event_data(credential)
    )
    verification_enqueue(credential_id=credential.pk)
    return credential


def credential_revoke_at_provider(*, credential: Credential) -> bool:
    """Revoke the OAuth2 tokens at the provider where the app supports it (RFC 7009).

    Runs outside any transaction (it is a network call); a provider that is down does not stop
    the local revocation, which is what protects the account.
    """
    from integrations.services.oauth import OAuthError, oauth_client_for, oauth_revoke

    if not credential.app.is_oauth2 or not credential.app.supports_revocation:
        return False
    if not credential.has_secret:
        return False
    try:
        secret = open_secret(credential)
        client = oauth_client_for(tenant=credential.tenant, app=credential.app)
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
    credential = Credential.objects.select_related("app", "end_user", "tenant").get(
        pk=credential.pk
    )
    revoked_at_provider = credential_revoke_at_provider(credential=credential)
    return _credential_revoke_locally(
        credential=credential, actor=actor, reason=reason, revoked_at_provider=revoked_at_provider
    )


@transaction.atomic
def _credential_revoke_locally(
    *, credential: Credential, actor: Actor, reason: str, revoked_at_provider: bool
) -> Credential:
    credential = (
        Credential.objects.select_for_update(of=("self",))
        .select_related("app", "end_user", "tenant")
        .get(pk=credential.pk)
    )
    if credential.status == Credential.Status.REVOKED:
        return credential
    clear_secret(credential)
    credential.status = Credential.Status.REVOKED
    credential.refresh_at = None
    credential.next_verification_at = None
    credential.save()
    installation_ids = list(credential.installation_links.values_list("installation_id", flat=True))
    Installation.objects.filter(pk__in=installation_ids, enabled=True).update(
        enabled=False,
        disabled_reason=(
            f"The {credential.app.name} account {credential.display_name} was disconnected."
        ),
        updated_at=timezone.now(),
    )
    audit_record(
        tenant=credential.tenant,
        actor=actor,
        action="credential.revoke",
        credential=credential,
        detail={"reason": reason, "revoked_at_provider": revoked_at_provider},
    )
    event_emit(
        tenant=credential.tenant,
        type="credential.revoked",
        data=credential_event_data(
            credential, reason=reason, revoked_at_provider=revoked_at_provider
        ),
    )
    return credential


def credential_delete(*, credential: Credential, actor: Actor) -> dict:
    """Disconnect for good: revoke (at the provider too), then remove the credential.

    Installations that used it are disabled first and say why. Returns the data of the
    ``credential.deleted`` event, which the modal also hands to the page as
    did-remove-authorization.
    """
    credential = credential_revoke(credential=credential, actor=actor, reason="Disconnected.")
    with transaction.atomic():
        data = credential_event_data(credential)
        audit_record(
            tenant=credential.tenant, actor=actor, action="credential.delete", credential=credential
        )
        event_emit(tenant=credential.tenant, type="credential.deleted", data=data)
        credential.delete()
    return data


def credential_secret_store(*, credential: Credential, secret: dict[str, Any]) -> None:
    """Seal a new secret onto the credential (the caller saves it inside its transaction)."""
    seal_secret(credential, secret)
    credential.secret_hint = secret_hint(app=credential.app, secret=secret)
