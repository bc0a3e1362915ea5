"""Tenant secret keys as Bearer tokens. Each request's tenant comes from its key, and only it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from ninja.security import HttpBearer

from accounts.models import TenantApiKey
from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_authenticate


def request_actor(request: HttpRequest) -> Actor:
    """Who acts in the audit log for an authenticated API request: its key, by prefix."""
    return Actor.api_key(request.auth.prefix)


class TenantKeyAuth(HttpBearer):
    """The tenant's key. ``find_for(request)``, when given, is the key lookup for that request
    (``tenant_api_key_authenticate``'s ``find``): a route that reads more with the key (the
    proxy) passes its own. One class, so the OpenAPI schema has one security scheme."""

    openapi_description = "A tenant secret key (cp_sk_…) from the admin, as a Bearer token."

    def __init__(
        self, find_for: Callable[[HttpRequest], Callable[[str], TenantApiKey | None]] | None = None
    ) -> None:
        super().__init__()
        self.find_for = find_for

    def __call__(self, request: HttpRequest):
        if not request.headers.get("Authorization"):
            request.auth_problem = (
                "Missing API key: send 'Authorization: Bearer <your secret key>'."
            )
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str) -> TenantApiKey | None:
        lookup = {"find": self.find_for(request)} if self.find_for else {}
        api_key = tenant_api_key_authenticate(plaintext=token, **lookup)
        if api_key is None:
            request.auth_problem = "The API key is wrong or has been revoked."
            return None
        request.tenant = api_key.tenant
        return api_key
