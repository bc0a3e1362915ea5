"""Every admin change list fits a 1280 px wide window: no sideways scrolling of the page, and
the results table within its box, with realistic data (long names, URLs and identities)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import EndUser
from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_create
from integrations.models import WebhookEndpoint
from integrations.services.connect_sessions import connect_session_create
from integrations.services.credentials import NewSecret, credential_create, credential_rename
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from sandbox.demo import demo_seed
from tests import factories
from tests.e2e.browser import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
# The page, and the results table inside its box (Django lets that box scroll sideways).
OVERFLOW = """() => {
  const root = document.documentElement;
  const table = document.querySelector('#result_list');
  const box = table && table.closest('.results');
  return {
    page: [root.scrollWidth, root.clientWidth],
    table: table ? [Math.ceil(table.getBoundingClientRect().width), box.clientWidth] : null,
  };
}"""


def _realistic_rows(seed) -> None:
    """What a tenant's admin holds after a while: long names, emails, labels and URLs."""
    tenant = seed.tenant
    tenant.allowed_origins = [*tenant.allowed_origins, "https://app.example-corporation.com"]
    tenant.save()
    staff = get_user_model().objects.get(email=seed.admin_email)
    key = tenant_api_key_create(tenant=tenant, name="Production backend server key (eu-west)")
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url="https://integrations.example-corporation.com/webhooks/connect-portal/v2/receive"
        "?environment=production&region=eu-west-1",
        description="Production webhook receiver behind the API gateway",
        event_types=["credential.created", "credential.renamed", "credential.expired"],
    )
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    app = factories.make_api_key_app(
        slug="salesforce-marketing-cloud-enterprise-edition",
        name="Salesforce Marketing Cloud Enterprise Edition",
        tenant=tenant,
    )
    for i in range(3):
        end_user = factories.make_end_user(
            tenant=tenant,
            external_id=f"customer_8f3a2b1c9d7e4f60a1b2c3d4e5f6a7b8_{i}",
            name=f"Maximiliana Alexandrina Featherstonehaugh-Worthington {i}",
            email=f"maximiliana.featherstonehaugh-worthington.{i}@subsidiary.example-corp.com",
        )
        credential = credential_create(
            end_user=end_user,
            app=app,
            new=NewSecret(secret={"api_key": f"sk_live_{i}_0123456789abcdefghijklmnop"}),
            identity=f"marketing-operations-team-lead.{i}@subsidiary.example-corp.com",
            label="",
            actor=Actor.end_user(end_user.pk),
        )
        credential_rename(
            credential=credential,
            label=f"Marketing operations shared workspace account number {i}",
            actor=Actor.staff(staff),
        )
        credential_rename(
            credential=credential,
            label=f"Marketing operations shared workspace account number {i} (EU)",
            actor=Actor.api_key(key.api_key.prefix),
        )
        connect_session_create(
            tenant=tenant,
            end_user=end_user,
            redirect_uri="https://app.example-corporation.com/settings/integrations/connected"
            "?return_to=%2Fdashboard%2Fmarketing",
            lifetime=timedelta(minutes=30),
        )


@pytest.fixture
def admin_page(browser, live_server, settings, tmp_path):
    settings.PORTAL_BASE_URL = live_server.url
    seed = demo_seed(base_url=live_server.url, var_dir=tmp_path)
    _realistic_rows(seed)
    client = Client()
    client.force_login(get_user_model().objects.get(email=seed.admin_email))
    context = browser.new_context(viewport={"width": WIDTH, "height": 800})
    context.set_default_timeout(15_000)
    host = live_server.url.split("://", 1)[1].split(":")[0]
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "domain": host,
                "path": "/",
            }
        ]
    )
    yield context.new_page(), live_server.url
    context.close()


def _change_lists() -> list[str]:
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    ]


def test_every_change_list_fits_a_1280_px_window_as_a_superuser(admin_page):
    page, base = admin_page
    too_wide = {}
    for path in _change_lists():
        response = page.goto(base + path)
        assert response.status == 200, path
        measured = page.evaluate(OVERFLOW)

        page_width, viewport = measured["page"]
        if page_width > viewport:
            too_wide[path] = f"page {page_width} px in {viewport} px"
        if measured["table"] and measured["table"][0] > measured["table"][1]:
            too_wide[path] = f"table {measured['table'][0]} px in {measured['table'][1]} px"
    assert not too_wide, too_wide


def test_an_end_users_support_page_fits_a_1280_px_window(admin_page):
    page, base = admin_page
    end_user = EndUser.objects.get(external_id__endswith="_0")

    page.goto(base + reverse("admin:accounts_enduser_change", args=[end_user.pk]))

    expect(page.locator("#timeline")).to_contain_text("Marketing operations shared workspace")
    width, viewport = page.evaluate(OVERFLOW)["page"]
    assert width <= viewport
    timeline = page.locator(".support-timeline-table")
    box = page.locator("#timeline")
    assert timeline.bounding_box()["width"] <= box.bounding_box()["width"]
