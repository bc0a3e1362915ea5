"""The only place a credential's secret is sealed, opened or cleared.

Sealing puts a new secret on a credential together with everything derived from it (the hint
shown to staff and the API, and for OAuth2 the scopes, expiry and refresh schedule), so the row
can never describe another secret than the one it holds. Opening is always for a purpose
(``Purpose``) and written to the audit log. Nothing here saves the row: the caller does, inside
the transaction of the change (``integrations.services.credentials``).

Refreshing a due token before use is ``refresh.credential_secret_for_use``: the refresh seals
through this module, so this module cannot call it without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from accounts.models import AuditLogEntry
from accounts.services.audit import (
    Actor,
    audit_entry,
    audit_record,
    audit_record_after_response,
)
from core.vault import clear_secret, open_secret, seal_secret
from integrations.models import App, Credential
from integrations.services.oauth import TokenSet

HINT_MIN_LENGTH = 16
# The token-response values that are secrets (``token_type`` and ``extras`` are not).
OAUTH_SECRET_KEYS = ("access_token", "refresh_token", "id_token")


class Purpose(StrEnum):
    """Why a secret is opened; each open is audited as ``credential.use.<purpose>``."""

    PROXY = "proxy"
    VERIFY = "verify"
    REFRESH = "refresh"
    REVOKE = "revoke"


def secret_hint(*, app: App, secret: dict[str, Any]) -> str:
    """The last four characters of the main secret, when it is long enough to hide the rest."""
    names = app.secret_field_names if not app.is_oauth2 else []
    value = secret.get(names[0], "") if names else ""
    return f"…{value[-4:]}" if isinstance(value, str) and len(value) >= HINT_MIN_LENGTH else ""


def secret_values(*, app: App, secret: dict[str, Any]) -> list[str]:
    """The values of ``secret`` that no text may carry: what ``core.redact.redact`` removes from
    a provider's answer. An app whose form marks no field secret has all its values treated so."""
    if app.is_oauth2:
        names: list[str] = list(OAUTH_SECRET_KEYS)
    else:
        names = app.secret_field_names or [name for name in secret if name != "extras"]
    return [value for name in names if isinstance(value := secret.get(name), str) and value]


def credential_secret_seal(*, credential: Credential, secret: dict[str, Any]) -> None:
    """Put an API-key or basic secret on the credential, with its hint; it does not expire."""
    seal_secret(credential, secret)
    credential.secret_hint = secret_hint(app=credential.app, secret=secret)
    credential.expires_at = credential.refresh_at = None


def credential_tokens_seal(
    *, credential: Credential, tokens: TokenSet, previous: dict[str, Any] | None = None
) -> None:
    """Put an OAuth2 token set on the credential, with its scopes, expiry and refresh schedule.

    ``previous`` is the secret a refresh replaces: token-response values the refresh answer
    leaves out (an instance URL, say) carry over.
    """
    secret = dict(tokens.secret)
    if previous and previous.get("extras"):
        secret["extras"] = {**previous["extras"], **secret.get("extras", {})}
    seal_secret(credential, secret)
    credential.secret_hint = secret_hint(app=credential.app, secret=secret)
    credential.scopes = tokens.scopes
    credential.expires_at = tokens.expires_at
    credential.refresh_at = (
        tokens.expires_at - timedelta(seconds=credential.app.refresh_buffer_seconds)
        if tokens.expires_at and tokens.refresh_token
        else None
    )


def credential_secret_clear(*, credential: Credential) -> None:
    clear_secret(credential)
    credential.secret_hint = ""
    credential.refresh_at = None


def credential_secret_open(
    *, credential: Credential, actor: Actor, purpose: Purpose
) -> dict[str, Any]:
    """The credential's secret for one use, written to the audit log with its purpose.

    Raises ``core.vault.VaultError`` when the secret cannot be read (a missing key, say).
    """
    secret = open_secret(credential)
    audit_record(
        tenant=credential.tenant,
        actor=actor,
        action=f"credential.use.{purpose}",
        credential=credential,
    )
    return secret


@dataclass(frozen=True)
class SecretUse:
    """A secret opened for one outbound call, whose audit entry also says how the call went.

    The caller must ``record`` it once the call is done, whatever its result: one entry per
    call, ``credential.use.<purpose>``, written after the response (``accounts.services.audit``).
    """

    credential: Credential
    actor: Actor
    purpose: Purpose
    secret: dict[str, Any]

    def record(self, *, outcome: str, detail: dict[str, Any], deleted: bool = False) -> None:
        """``deleted``: the credential was deleted meanwhile; the entry names it by id only."""
        audit_record_after_response(**self._entry(outcome=outcome, detail=detail, deleted=deleted))

    def entry(self, *, outcome: str, detail: dict[str, Any]) -> AuditLogEntry:
        """The use's entry, for a caller that writes it with its own (``audit_record_many``)."""
        return audit_entry(**self._entry(outcome=outcome, detail=detail))

    def _entry(self, *, outcome: str, detail: dict[str, Any], deleted: bool = False) -> dict:
        return {
            "tenant_id": self.credential.tenant_id,
            "actor": self.actor,
            "action": f"credential.use.{self.purpose}",
            "credential_id": None if deleted else self.credential.pk,
            "outcome": outcome,
            "target": str(self.credential.pk),
            "detail": detail,
        }


def credential_secret_use(*, credential: Credential, actor: Actor, purpose: Purpose) -> SecretUse:
    """The credential's secret for one call; the caller records the use with the call's result.

    Raises ``core.vault.VaultError`` when the secret cannot be read.
    """
    return SecretUse(
        credential=credential, actor=actor, purpose=purpose, secret=open_secret(credential)
    )
