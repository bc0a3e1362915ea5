"""The admin offers a tenant's staff only their tenants' rows, in every filter, form and
autocomplete: a walk over every registered ModelAdmin finds no other tenant's name.

The other tenant's rows all carry a canary word; a platform superuser's walk sees them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.admin import SimpleListFilter
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import ForeignKey, ManyToManyField
from django.urls import NoReverseMatch, reverse

from accounts.admin_scoping import scoped_list_filter
from accounts.models import Membership
from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_create, tenant_create
from integrations.models import (
    App,
    Flow,
    Installation,
    InstallationCredential,
    TenantOAuthClient,
    WebhookEndpoint,
    Workflow,
)
from integrations.services.connect_sessions import connect_session_create
from integrations.services.credentials import NewSecret, credential_create
from integrations.services.events import event_emit
from tests import factories

User = get_user_model()
CANARY = "zyxcanary"
CANARY_TENANT = "Zyxcanary Corp"
CANARY_APP = "Zyxcanary Custom App"
# Change lists whose rows name a tenant, so a superuser's "By tenant" filter lists both.
LISTS_WITH_A_TENANT_FILTER = 11


def _tenant_world(name: str, marker: str, catalog_apps) -> None:
    """A tenant with one of everything the admin lists, each named with ``marker``."""
    tenant = tenant_create(name=name, slug=f"{marker}-tenant")
    custom_app = factories.make_api_key_app(
        slug=f"{marker}-custom-app", tenant=tenant, name=f"{marker.title()} Custom App"
    )
    custom_oauth_app = factories.make_oauth_app(
        slug=f"{marker}-oauth-app", tenant=tenant, name=f"{marker.title()} OAuth App"
    )
    apps = [custom_app, *catalog_apps]
    end_user = factories.make_end_user(
        tenant=tenant,
        external_id=f"{marker}-user",
        email=f"{marker}@people.test",
        name=f"{marker.title()} Person",
    )
    flow = factories.make_flow(tenant=tenant, apps=apps, name=f"{marker.title()} Flow")
    workflow = Workflow.objects.create(flow=flow, key=f"{marker}-wf", name=f"{marker} Workflow")
    deployment = factories.make_deployment(
        tenant=tenant, flows=[flow], name=f"{marker.title()} Deployment"
    )
    WebhookEndpoint.objects.create(
        tenant=tenant, url=f"https://{marker}.hooks.test/in", description=f"{marker} hooks"
    )
    TenantOAuthClient.objects.create(
        tenant=tenant, app=custom_oauth_app, client_id=f"{marker}-client-id"
    )
    tenant_api_key_create(tenant=tenant, name=f"{marker} server key")
    credential = credential_create(
        end_user=end_user,
        app=custom_app,
        new=NewSecret(secret={"api_key": f"{marker}-secret-value"}),
        identity=f"{marker}@provider.test",
        label=f"{marker} account",
        actor=Actor.system(),
    )
    installation = Installation.objects.create(
        tenant=tenant, end_user=end_user, flow=flow, enabled=True
    )
    installation.enabled_workflows.set([workflow])
    InstallationCredential.objects.create(
        installation=installation, app=custom_app, credential=credential
    )
    connect_session_create(
        tenant=tenant,
        end_user=end_user,
        deployment=deployment,
        apps=[custom_app],
        consumer_metadata={"name": marker},
    )
    with transaction.atomic():
        # Across a relation ("event__type"), Django lists every event's type unless scoped.
        event_emit(tenant=tenant, type=f"{marker}.happened", data={"who": marker})


@pytest.fixture
def world(db):
    catalog = [factories.make_api_key_app(slug="shared-catalog-app", name="Shared Catalog App")]
    _tenant_world("Acme Own", "acmeown", catalog)
    _tenant_world(CANARY_TENANT, CANARY, catalog)
    acme = catalog[0].flows.get(name="Acmeown Flow").tenant
    staff = User.objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw-123456789", is_staff=True
    )
    Membership.objects.create(user=staff, tenant=acme, role=Membership.Role.ADMIN)
    superuser = User.objects.create_superuser(
        username="root", email="root@platform.test", password="pw-123456789"
    )
    return staff, superuser


@dataclass
class Walk:
    pages: dict[str, str] = field(default_factory=dict)
    changelists: int = 0
    filter_choices: int = 0
    forms: int = 0
    autocompletes: int = 0
    # changelist url -> the labels of every filter choice on it
    filter_labels: dict[str, list[str]] = field(default_factory=dict)

    def seen(self, url: str, response) -> bool:
        if response.status_code != 200:
            return False
        self.pages[url] = response.content.decode()
        return True


def _related_fields(model):
    return [
        f
        for f in model._meta.get_fields()
        if isinstance(f, (ForeignKey, ManyToManyField)) and f.concrete
    ]


def _walk_admin(client, user, *, open_choices: bool = True) -> Walk:
    """Open every admin page a user can reach: each change list with each filter choice
    (plain and with facets), the add form, a few change forms, and every autocomplete."""
    client.force_login(user)
    walk = Walk()
    walk.seen("/admin/", client.get("/admin/"))
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        base = f"admin:{opts.app_label}_{opts.model_name}"
        changelist_url = reverse(f"{base}_changelist")
        response = client.get(changelist_url)
        if not walk.seen(changelist_url, response):
            continue
        walk.changelists += 1
        walk.seen(changelist_url + "?_facets=1", client.get(changelist_url, {"_facets": "1"}))
        changelist = response.context["cl"]
        labels = walk.filter_labels.setdefault(changelist_url, [])
        for spec in changelist.filter_specs:
            for choice in spec.choices(changelist):
                labels.append(str(choice["display"]))
                if not open_choices:
                    continue
                url = changelist_url + choice["query_string"]
                if walk.seen(url, client.get(url)):
                    walk.filter_choices += 1
        try:
            add_url = reverse(f"{base}_add")
        except NoReverseMatch:
            add_url = None
        if add_url and walk.seen(add_url, client.get(add_url)):
            walk.forms += 1
        for obj in model_admin.get_queryset(response.wsgi_request)[:5]:
            change_url = reverse(f"{base}_change", args=[obj.pk])
            if walk.seen(change_url, client.get(change_url)):
                walk.forms += 1
    # Django answers an autocomplete for any relation whose target has a searchable admin,
    # declared in autocomplete_fields or not: ask every one, with no term and with the canary.
    for model in admin.site._registry:
        for relation in _related_fields(model):
            target_admin = admin.site._registry.get(relation.related_model)
            if target_admin is None or not target_admin.search_fields:
                continue
            for term in ("", CANARY):
                params = {
                    "app_label": model._meta.app_label,
                    "model_name": model._meta.model_name,
                    "field_name": relation.name,
                    "term": term,
                }
                response = client.get(reverse("admin:autocomplete"), params)
                url = f"/admin/autocomplete/?{json.dumps(params)}"
                if walk.seen(url, response):
                    walk.autocompletes += 1
    return walk


def test_tenant_staff_find_no_other_tenants_name_anywhere_in_the_admin(client, world):
    staff, _ = world
    walk = _walk_admin(client, staff)
    leaks = sorted(
        {url.split("?")[0] for url, text in walk.pages.items() if CANARY in text.lower()}
    )
    assert leaks == [], f"another tenant's names on {leaks}"
    # The walk did cover the admin: every tenant change list, its filters, forms, autocompletes.
    assert walk.changelists >= 14
    assert walk.filter_choices >= 40
    assert walk.forms >= 25
    assert walk.autocompletes >= 10
    # The "By app" filter offers the catalog's apps and the tenant's own custom apps.
    app_filter = walk.filter_labels[reverse("admin:integrations_credential_changelist")]
    assert "Acmeown Custom App" in app_filter
    flow_form = " ".join(text for url, text in walk.pages.items() if "/flow/" in url)
    assert "Shared Catalog App" in flow_form and "Acmeown Custom App" in flow_form


def test_a_superuser_walking_the_same_admin_sees_every_tenant_in_its_filters(client, world):
    _, superuser = world
    walk = _walk_admin(client, superuser, open_choices=False)
    with_canary_tenant = [
        url for url, labels in walk.filter_labels.items() if CANARY_TENANT in labels
    ]
    assert len(with_canary_tenant) >= LISTS_WITH_A_TENANT_FILTER
    credential_filters = walk.filter_labels[reverse("admin:integrations_credential_changelist")]
    assert CANARY_APP in credential_filters
    delivery_filters = walk.filter_labels[reverse("admin:integrations_webhookdelivery_changelist")]
    assert f"{CANARY}.happened" in delivery_filters
    assert any(CANARY in text.lower() for url, text in walk.pages.items() if "autocomplete" in url)


def test_tenant_staff_may_read_but_not_change_a_shared_catalog_app(client, world):
    staff, _ = world
    client.force_login(staff)
    catalog_app = App.objects.get(slug="shared-catalog-app")
    url = reverse("admin:integrations_app_change", args=[catalog_app.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "Hijacked", "slug": catalog_app.slug})
    assert response.status_code == 403
    catalog_app.refresh_from_db()
    assert catalog_app.name == "Shared Catalog App"
    own_app = App.objects.get(slug="acmeown-custom-app")
    assert (
        client.get(reverse("admin:integrations_app_change", args=[own_app.pk])).status_code == 200
    )


class _FlowFilter(SimpleListFilter):
    """A custom filter whose choices are flows, as a new admin page might add."""

    title = "flow"
    parameter_name = "flow"
    choices_model = Flow

    def lookups(self, request, model_admin):
        return [(str(flow.pk), flow.name) for flow in Flow.objects.all()]

    def queryset(self, request, queryset):
        return queryset.filter(flow=self.value()) if self.value() else queryset


def test_a_custom_list_filter_naming_its_choices_model_offers_only_the_staffs_rows(rf, world):
    staff, superuser = world
    model_admin = admin.site._registry[Installation]
    scoped = scoped_list_filter(_FlowFilter)
    assert scoped.parameter_name == "flow"
    for user, expected in (
        (staff, ["Acmeown Flow"]),
        (superuser, ["Acmeown Flow", "Zyxcanary Flow"]),
    ):
        request = rf.get("/admin/integrations/installation/")
        request.user = user
        spec = scoped(request, {}, Installation, model_admin)
        assert sorted(label for _, label in spec.lookup_choices) == expected
