"""Tenants' OAuth2 clients at providers; the client secret lives only in the vault."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Tenant
from core.vault import open_secret, seal_secret
from integrations.models import App, TenantOAuthClient


@transaction.atomic
def oauth_client_set(
    *, tenant: Tenant, app: App, client_id: str, client_secret: str, scopes: list[str] | None = None
) -> TenantOAuthClient:
    client, _ = TenantOAuthClient.objects.select_for_update().get_or_create(
        tenant=tenant, app=app, defaults={"client_id": client_id}
    )
    client.client_id = client_id
    if scopes is not None:
        client.scopes = scopes
    seal_secret(client, {"client_secret": client_secret})
    client.full_clean()
    client.save()
    return client


def oauth_client_secret_set(*, client: TenantOAuthClient, client_secret: str) -> None:
    seal_secret(client, {"client_secret": client_secret})
    client.save(update_fields=["secret_key_id", "secret_ciphertext", "updated_at"])


def oauth_client_secret(*, client: TenantOAuthClient) -> str:
    return open_secret(client)["client_secret"]
