"""The sandbox's records in the admin: superusers only, and an API key's hash is never shown."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sandbox.models import SandboxAccount, SandboxApiKey
from sandbox.services import sandbox_api_key_revoke


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """The sandbox is a demo provider, not tenant data: only platform superusers see it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(SandboxAccount)
class SandboxAccountAdmin(SuperuserOnlyAdmin):
    list_display = ["email", "display_name", "created_at"]
    search_fields = ["email", "display_name"]
    fields = ["email", "display_name", "user", "created_at"]
    readonly_fields = ["email", "user", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Accounts need a user and a password: sandbox_account_ensure makes them.
        return False


@admin.register(SandboxApiKey)
class SandboxApiKeyAdmin(SuperuserOnlyAdmin):
    list_display = ["name", "prefix", "account", "created_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "account__email"]
    fields = ["name", "account", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["account", "prefix", "created_at", "revoked_at"]
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A key's plaintext is shown once to its account, on the sandbox's own keys page.
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[SandboxApiKey]) -> None:
        for api_key in queryset:
            sandbox_api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).")
