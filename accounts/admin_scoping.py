"""Tenant scoping for the Django admin: staff see and change only their tenants' rows.

Platform superusers see everything. A tenant staff member reaches the admin through a
``Membership``; its role decides whether they may change rows (admin) or only read (viewer).
Another tenant's object is a 404, never a redirect or a 403 that would confirm it exists.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest

from accounts.models import Membership, Tenant

# Models whose choices in a form must be narrowed to the staff member's tenants, by the path
# from the model to its tenant.
SCOPED_CHOICES = {
    "accounts.enduser": "tenant",
    "integrations.credential": "tenant",
    "integrations.connectsession": "tenant",
    "integrations.flow": "tenant",
    "integrations.deployment": "tenant",
    "integrations.installation": "tenant",
    "integrations.workflow": "flow__tenant",
    "integrations.webhookendpoint": "tenant",
}


def staff_tenant_ids(request: HttpRequest) -> set | None:
    """The tenants a staff member may see, or None for a platform superuser (all)."""
    if request.user.is_superuser:
        return None
    if not hasattr(request, "_staff_tenant_roles"):
        request._staff_tenant_roles = dict(
            Membership.objects.filter(user=request.user).values_list("tenant_id", "role")
        )
    return set(request._staff_tenant_roles)


def staff_can_change(request: HttpRequest, tenant_id=None) -> bool:
    if request.user.is_superuser:
        return True
    staff_tenant_ids(request)
    roles = request._staff_tenant_roles
    if tenant_id is None:
        return Membership.Role.ADMIN in roles.values()
    return roles.get(tenant_id) == Membership.Role.ADMIN


class TenantScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows, choices and permissions follow the staff member's tenants."""

    tenant_path = "tenant"
    # Rows without a tenant (catalog apps) that every staff member may read but not change.
    shared_rows_q: Q | None = None

    def scope(self, queryset: QuerySet, request: HttpRequest) -> QuerySet:
        tenant_ids = staff_tenant_ids(request)
        if tenant_ids is None:
            return queryset
        condition = Q(**{f"{self.tenant_path}__in": tenant_ids})
        if self.shared_rows_q is not None:
            condition |= self.shared_rows_q
        return queryset.filter(condition)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(super().get_queryset(request), request)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        try:
            obj = super().get_object(request, object_id, from_field)
        except (ValueError, TypeError):
            obj = None
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with that id.")
        return obj

    def object_tenant_id(self, obj: Model):
        target = obj
        for part in self.tenant_path.split("__"):
            target = getattr(target, part, None)
            if target is None:
                return None
        return target.pk if isinstance(target, Tenant) else target

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and (request.user.is_superuser or bool(staff_tenant_ids(request)))
        )

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request) and staff_can_change(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self.has_module_permission(request):
            return False
        if obj is None:
            return staff_can_change(request)
        return staff_can_change(request, self.object_tenant_id(obj))

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return self._narrow(field, db_field, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return self._narrow(field, db_field, request)

    def _narrow(self, field, db_field, request):
        tenant_ids = staff_tenant_ids(request)
        if field is None or tenant_ids is None or not hasattr(field, "queryset"):
            return field
        label = db_field.related_model._meta.label_lower
        if label == "accounts.tenant":
            field.queryset = field.queryset.filter(pk__in=tenant_ids)
        elif label == "integrations.app":
            field.queryset = field.queryset.filter(
                Q(tenant__isnull=True) | Q(tenant__in=tenant_ids)
            )
        elif label in SCOPED_CHOICES:
            field.queryset = field.queryset.filter(**{f"{SCOPED_CHOICES[label]}__in": tenant_ids})
        return field

    def save_model(self, request, obj, form, change):
        tenant_ids = staff_tenant_ids(request)
        if tenant_ids is not None and self.tenant_path == "tenant" and hasattr(obj, "tenant_id"):
            if obj.tenant_id is None and len(tenant_ids) == 1:
                obj.tenant_id = next(iter(tenant_ids))
            if obj.tenant_id not in tenant_ids or not staff_can_change(request, obj.tenant_id):
                raise Http404("No such tenant.")
        super().save_model(request, obj, form, change)


class TenantScopedInline(admin.TabularInline):
    """An inline whose choices follow the staff member's tenants (the parent admin scopes rows)."""

    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return TenantScopedAdmin._narrow(self, field, db_field, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return TenantScopedAdmin._narrow(self, field, db_field, request)

    def has_add_permission(self, request, obj=None):
        return staff_can_change(request)

    def has_change_permission(self, request, obj=None):
        return staff_can_change(request)

    def has_delete_permission(self, request, obj=None):
        return staff_can_change(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or bool(staff_tenant_ids(request))


def reveal_once_response(
    request: HttpRequest, *, title: str, secret: str, explanation: str, back_url: str
):
    """A page that shows a new secret exactly once; it is stored nowhere but the vault or a hash."""
    from django.template.response import TemplateResponse

    response = TemplateResponse(
        request,
        "admin/reveal_secret.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "secret": secret,
            "explanation": explanation,
            "back_url": back_url,
        },
    )
    response["Cache-Control"] = "no-store"
    return response
