"""The admin for tenants, staff and API keys.

Secrets are never shown: API keys and signing secrets appear once, on the page that creates
them. End users, connect sessions, credentials and the audit log (whose rows name them) are in
``integrations/admin.py``.
"""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.translation import ngettext

from accounts.admin_scoping import TenantScopedAdmin, reveal_once_response, staff_can_change
from accounts.models import Membership, Tenant, TenantApiKey
from accounts.services.tenants import (
    tenant_api_key_create,
    tenant_api_key_revoke,
    tenant_signing_secret_rotate,
)
from core.validators import validate_origins


class OriginsField(forms.CharField):
    """Allowed origins edited as one per line, stored as a normalised list."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 60})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        lines = [line.strip() for line in (value or "").splitlines() if line.strip()]
        return validate_origins(lines)


class TenantForm(forms.ModelForm):
    allowed_origins = OriginsField(
        required=False,
        help_text="One origin per line, e.g. https://app.example.com. These may embed the modal.",
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "own_app",
            "allowed_origins",
            "user_hash_enabled",
            "default_theme",
            "handoff_max_hours",
        ]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    form = TenantForm
    list_display = ["name", "slug", "user_hash_enabled", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    actions = ["rotate_signing_secret"]
    readonly_fields = ["id", "signing_secret_status"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="User-hash signing secret")
    def signing_secret_status(self, obj):
        if obj.pk is None:
            return "Generated when the tenant is saved, and shown once."
        return (
            "Set (encrypted). Use the “Rotate signing secret” action for a new one."
            if obj.has_secret
            else "Not set."
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            obj._new_signing_secret = tenant_signing_secret_rotate(tenant=obj)

    def response_add(self, request, obj, post_url_continue=None):
        return reveal_once_response(
            request,
            title=f"{obj} created",
            secret=obj._new_signing_secret,
            explanation="This is the tenant's user-hash signing secret: the tenant's server "
            "computes hex HMAC-SHA256 of a user id with it to open the modal without a session.",
            back_url=reverse("admin:accounts_tenant_change", args=[obj.pk]),
        )

    @admin.action(description="Rotate user-hash signing secret (shows the new one once)")
    def rotate_signing_secret(self, request, queryset):
        tenants = [t for t in queryset if self.has_change_permission(request, t)]
        if len(tenants) != 1:
            self.message_user(request, "Rotate one tenant's secret at a time.", messages.ERROR)
            return None
        secret = tenant_signing_secret_rotate(tenant=tenants[0])
        return reveal_once_response(
            request,
            title=f"New signing secret for {tenants[0]}",
            secret=secret,
            explanation="User hashes made with the old secret stop working now.",
            back_url=reverse("admin:accounts_tenant_changelist"),
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    autocomplete_fields = ["user"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission


@admin.register(TenantApiKey)
class TenantApiKeyAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        issued = tenant_api_key_create(tenant=obj.tenant, name=obj.name)
        obj.pk, obj._plaintext = issued.api_key.pk, issued.plaintext

    def response_add(self, request, obj, post_url_continue=None):
        return reveal_once_response(
            request,
            title=f"API key “{obj.name}” created",
            secret=obj._plaintext,
            explanation="Use it as a Bearer token for the server API (/api/v1). "
            "Only its hash is stored.",
            back_url=reverse("admin:accounts_tenantapikey_changelist"),
        )

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        keys = [
            key for key in queryset if key.is_active and staff_can_change(request, key.tenant_id)
        ]
        for key in keys:
            tenant_api_key_revoke(api_key=key)
        self.message_user(
            request, ngettext("Revoked %d key.", "Revoked %d keys.", len(keys)) % len(keys)
        )
