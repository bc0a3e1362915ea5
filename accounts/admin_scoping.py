"""Tenant scoping for the Django admin: staff see and change only their tenants' rows.

Platform superusers see everything. A tenant staff member reaches the admin through a
``Membership``; its role decides whether they may change rows (admin) or only read (viewer).
Another tenant's object is a 404, never a redirect or a 403 that would confirm it exists.

Every choice the admin offers goes through ``staff_rows``: the sidebar's list filters, the
foreign-key and many-to-many choices of forms and inlines, and (through the target model's
admin) autocompletes. A new admin of tenant data subclasses ``TenantScopedAdmin`` and gets all
of it; a custom SimpleListFilter whose choices are rows of a model names it in
``choices_model``. tests/accounts/test_admin_filter_scoping.py walks every registered admin.
"""

from __future__ import annotations

from functools import cache

from django.contrib import admin
from django.contrib.admin.filters import (
    AllValuesFieldListFilter,
    FieldListFilter,
    ListFilter,
    RelatedFieldListFilter,
    SimpleListFilter,
)
from django.contrib.admin.utils import get_model_from_relation
from django.db.models import ForeignKey, JSONField, Model, Q, QuerySet
from django.http import Http404, HttpRequest

from accounts.admin_json import JsonEditorField
from accounts.models import Membership, Tenant

# Rows that belong to no tenant but are shared by all of them: a catalog app (no tenant) is
# offered to every tenant's staff; a tenant's own custom app only to that tenant's.
SHARED_ROWS = {"integrations.app": Q(tenant__isnull=True)}


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


@cache
def model_tenant_path(model: type[Model]) -> str | None:
    """The lookup from ``model`` to its tenant ("tenant", "flow__tenant", ...), or None when
    its rows belong to no tenant (users, the sandbox): those are never offered to tenant staff."""
    if model is Tenant:
        return "pk"
    foreign_keys = [f for f in model._meta.concrete_fields if isinstance(f, ForeignKey)]
    for field in foreign_keys:
        if field.related_model is Tenant:
            return field.name
    for field in foreign_keys:
        if not field.null and field.related_model is not model:
            parent = model_tenant_path(field.related_model)
            if parent is not None:
                return f"{field.name}__{parent}"
    return None


def staff_rows_q(model: type[Model], request: HttpRequest, path: str | None = None) -> Q:
    """The condition that keeps only the rows of ``model`` the staff member may see: their
    tenants' rows and shared catalog rows; every row for a platform superuser."""
    tenant_ids = staff_tenant_ids(request)
    if tenant_ids is None:
        return Q()
    path = path or model_tenant_path(model)
    if path is None:
        return Q(pk__in=[])
    condition = Q(**{f"{path}__in": tenant_ids})
    shared = SHARED_ROWS.get(model._meta.label_lower)
    return condition | shared if shared is not None else condition


def staff_rows(queryset: QuerySet, request: HttpRequest) -> QuerySet:
    """``queryset`` narrowed to what the staff member may see. Every choice the admin offers
    (list filters, form fields, autocompletes) goes through this."""
    return queryset.filter(staff_rows_q(queryset.model, request))


def _narrow_filter(spec: ListFilter, request: HttpRequest, model_admin) -> ListFilter:
    """Drop the choices of a built list filter that name another tenant's rows."""
    if staff_tenant_ids(request) is None:
        return spec
    if isinstance(spec, RelatedFieldListFilter):
        related = get_model_from_relation(spec.field)
        target = getattr(spec.field.target_field, "attname", "pk")
        values = [value for value, _ in spec.lookup_choices]
        allowed = set(
            staff_rows(
                related._default_manager.filter(**{f"{target}__in": values}), request
            ).values_list(target, flat=True)
        )
        spec.lookup_choices = [(v, label) for v, label in spec.lookup_choices if v in allowed]
    elif isinstance(spec, AllValuesFieldListFilter) and "__" in spec.field_path:
        # Across a relation Django lists the values of every row of the related model;
        # list only those the staff member's rows have.
        spec.lookup_choices = (
            model_admin.get_queryset(request)
            .distinct()
            .order_by(spec.field_path)
            .values_list(spec.field_path, flat=True)
        )
    elif isinstance(spec, SimpleListFilter) and getattr(spec, "choices_model", None):
        # A custom filter whose choices are rows of a model names it in ``choices_model``.
        values = [value for value, _ in spec.lookup_choices]
        allowed = {
            str(pk)
            for pk in staff_rows(
                spec.choices_model._default_manager.filter(pk__in=values), request
            ).values_list("pk", flat=True)
        }
        spec.lookup_choices = [(v, label) for v, label in spec.lookup_choices if str(v) in allowed]
    return spec


def _scoped_field_filter(filter_class=FieldListFilter.create):
    def build(field, request, params, model, model_admin, field_path):
        spec = filter_class(field, request, params, model, model_admin, field_path=field_path)
        return _narrow_filter(spec, request, model_admin)

    return build


def scoped_list_filter(list_filter):
    """One ``list_filter`` entry, made to offer only the staff member's rows.

    Field names and (field, FieldListFilter) pairs get a builder that narrows the choices
    before Django asks whether the filter has anything to show; a SimpleListFilter class gets
    a subclass that does the same (its ``parameter_name`` stays, so its lookups stay allowed).
    """
    if isinstance(list_filter, str):
        return (list_filter, _scoped_field_filter())
    if isinstance(list_filter, (tuple, list)):
        field, filter_class = list_filter
        return (field, _scoped_field_filter(filter_class))
    if isinstance(list_filter, type) and issubclass(list_filter, ListFilter):

        def __init__(self, request, params, model, model_admin):
            list_filter.__init__(self, request, params, model, model_admin)
            _narrow_filter(self, request, model_admin)

        return type(list_filter.__name__, (list_filter,), {"__init__": __init__})
    return list_filter


class StaffChoicesMixin:
    """Every foreign-key and many-to-many choice in a form offers only the staff member's rows,
    and every JSON field is edited in the JSON editor (accounts/admin_json.py)."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, JSONField):
            kwargs.setdefault("form_class", JsonEditorField)
            if not db_field.null:
                kwargs.setdefault("empty_value", db_field.get_default())
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return _narrow_choices(field, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return _narrow_choices(field, request)


def _narrow_choices(field, request):
    if field is not None and getattr(field, "queryset", None) is not None:
        field.queryset = staff_rows(field.queryset, request)
    return field


class TenantScopedAdmin(StaffChoicesMixin, admin.ModelAdmin):
    """A ModelAdmin whose rows, filters, choices and permissions follow the staff member's
    tenants. Autocompletes read the target model's admin, so they follow it too when that
    admin is one of these."""

    # The lookup from the model to its tenant; found from the foreign keys when not set.
    tenant_path: str | None = None

    def get_tenant_path(self) -> str:
        return self.tenant_path or model_tenant_path(self.model)

    def scope(self, queryset: QuerySet, request: HttpRequest) -> QuerySet:
        return queryset.filter(staff_rows_q(self.model, request, self.get_tenant_path()))

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(super().get_queryset(request), request)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        """A new row's tenant is preselected for a staff member of exactly one tenant."""
        initial = super().get_changeform_initial_data(request)
        tenant_ids = staff_tenant_ids(request)
        if self.get_tenant_path() == "tenant" and tenant_ids is not None and len(tenant_ids) == 1:
            initial.setdefault("tenant", next(iter(tenant_ids)))
        return initial

    def get_list_filter(self, request: HttpRequest):
        return [scoped_list_filter(entry) for entry in super().get_list_filter(request)]

    def get_list_display(self, request: HttpRequest):
        """A staff member of one tenant needs no tenant column: every row is that tenant's."""
        list_display = super().get_list_display(request)
        tenant_ids = staff_tenant_ids(request)
        if tenant_ids is None or len(tenant_ids) > 1:
            return list_display
        return [column for column in list_display if column != "tenant"]

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
        for part in self.get_tenant_path().split("__"):
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
        tenant_id = self.object_tenant_id(obj)
        if tenant_id is None:
            # A shared catalog row: every tenant uses it, so only a platform superuser edits it.
            return request.user.is_superuser
        return staff_can_change(request, tenant_id)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        tenant_ids = staff_tenant_ids(request)
        if (
            tenant_ids is not None
            and self.get_tenant_path() == "tenant"
            and hasattr(obj, "tenant_id")
        ):
            if obj.tenant_id is None and len(tenant_ids) == 1:
                obj.tenant_id = next(iter(tenant_ids))
            if obj.tenant_id not in tenant_ids or not staff_can_change(request, obj.tenant_id):
                raise Http404("No such tenant.")
        super().save_model(request, obj, form, change)


class TenantScopedInline(StaffChoicesMixin, admin.TabularInline):
    """An inline whose choices follow the staff member's tenants (the parent admin scopes rows)."""

    extra = 0

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
