"""Tenants, their signing secret and their server API keys."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Tenant, TenantApiKey
from core.prepared import PreparedRead
from core.tokens import hash_token
from core.vault import open_secret, seal_secret

API_KEY_PREFIX = "cp_sk_"


@transaction.atomic
def tenant_create(
    *, name: str, slug: str = "", allowed_origins: list[str] | None = None, **fields
) -> Tenant:
    tenant = Tenant(
        name=name, slug=slug or slugify(name), allowed_origins=allowed_origins or [], **fields
    )
    tenant.full_clean()
    seal_secret(tenant, {"signing_secret": secrets.token_urlsafe(32)})
    tenant.save()
    return tenant


def tenant_signing_secret(*, tenant: Tenant) -> str:
    if not tenant.has_secret:
        raise ValueError(f"Tenant {tenant} has no signing secret; rotate one in the admin.")
    return open_secret(tenant)["signing_secret"]


@transaction.atomic
def tenant_signing_secret_rotate(*, tenant: Tenant) -> str:
    secret = secrets.token_urlsafe(32)
    seal_secret(tenant, {"signing_secret": secret})
    tenant.save(update_fields=["secret_key_id", "secret_ciphertext"])
    return secret


def tenant_user_hash(*, tenant: Tenant, user_id: str) -> str:
    """The hex HMAC-SHA256 of an end user's id under the tenant's signing secret."""
    key = tenant_signing_secret(tenant=tenant).encode()
    return hmac.new(key, user_id.encode(), sha256).hexdigest()


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: TenantApiKey
    plaintext: str


def tenant_api_key_create(*, tenant: Tenant, name: str) -> IssuedApiKey:
    """Issue a key; its plaintext is returned once and only its hash is stored."""
    public_part = secrets.token_hex(6)
    plaintext = f"{API_KEY_PREFIX}{public_part}_{secrets.token_urlsafe(32)}"
    api_key = TenantApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=f"{API_KEY_PREFIX}{public_part}",
        key_hash=hash_token(plaintext),
    )
    return IssuedApiKey(api_key=api_key, plaintext=plaintext)


def tenant_api_key_revoke(*, api_key: TenantApiKey) -> TenantApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def _active_key(*, prefix: str):
    return TenantApiKey.objects.select_related("tenant").filter(
        prefix=prefix, revoked_at__isnull=True
    )


# Every API call starts with it: compiled once (core/prepared.py), one indexed query.
_api_key_by_prefix = PreparedRead(_active_key, prefix=TenantApiKey._meta.get_field("prefix"))


def _active_key_by_prefix(prefix: str) -> TenantApiKey | None:
    found = _api_key_by_prefix.run(prefix=prefix)
    return found[0] if found else None


def tenant_api_key_authenticate(
    *,
    plaintext: str,
    find: Callable[[str], TenantApiKey | None] = _active_key_by_prefix,
) -> TenantApiKey | None:
    """The active key matching ``plaintext``, compared in constant time, or None.

    ``find`` reads the active (unrevoked) key with a given public prefix, its tenant loaded;
    a caller that reads more in the same query (the proxy: the key with the credential it
    names) passes its own.
    """
    # Keys look like cp_sk_<12 hex, the indexed public part>_<secret>.
    prefix = plaintext[: len(API_KEY_PREFIX) + 12]
    if not plaintext.startswith(API_KEY_PREFIX) or plaintext[len(prefix) : len(prefix) + 1] != "_":
        return None
    api_key = find(prefix)
    if (
        api_key is None
        or api_key.revoked_at is not None
        or not hmac.compare_digest(hash_token(plaintext), api_key.key_hash)
    ):
        return None
    now = timezone.now()
    # Record use at most once a minute, so a busy key does not write on every request.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        TenantApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
