"""The audit log's and the events' change lists: who, for which end user, app and credential,
readably, in a fixed number of queries however many rows there are."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership
from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_create
from integrations.selectors import end_user_timeline
from integrations.services.credentials import NewSecret, credential_create, credential_rename
from integrations.services.installations import installation_install
from tests import factories

pytestmark = pytest.mark.django_db

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def staff(client, tenant):
    user = get_user_model().objects.create_user(
        username="grace",
        email="grace@acme.test",
        password="pw",
        is_staff=True,
        first_name="Grace",
        last_name="Hopper",
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(user)
    return user


def _connect(tenant, staff, n: int):
    """``n`` end users who each connect an account and have it renamed by staff and the API."""
    app = factories.make_api_key_app(slug=f"hubspot-{n}", name="HubSpot")
    key = tenant_api_key_create(tenant=tenant, name="Backend").api_key
    for i in range(n):
        end_user = factories.make_end_user(
            tenant=tenant, external_id=f"ext-{n}-{i}", name=f"Ada {i}", email=f"ada{i}@x.test"
        )
        credential = credential_create(
            end_user=end_user,
            app=app,
            new=NewSecret(secret={"api_key": f"sk_live_SECRET_{n}_{i}_abcdefgh"}),
            identity=f"ada{i}@hubspot.test",
            label="",
            actor=Actor.end_user(end_user.pk),
        )
        credential_rename(credential=credential, label=f"Sales {i}", actor=Actor.staff(staff))
        credential_rename(
            credential=credential, label=f"Sales {i}", actor=Actor.api_key(key.prefix)
        )


def _count(client, url) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def _results_text(page: str) -> str:
    """The results table without its link targets and checkbox values (which hold ids)."""
    start = page.index('id="result_list"')
    results = page[start : page.index("</table>", start)]
    return re.sub(r'href="[^"]*"|value="[^"]*"', "", results)


@pytest.mark.parametrize(
    "url_name", ["admin:accounts_auditlogentry_changelist", "admin:integrations_event_changelist"]
)
def test_the_list_names_end_user_app_and_credential_in_fixed_queries(
    client, tenant, staff, url_name
):
    _connect(tenant, staff, 2)
    few, _ = _count(client, reverse(url_name))
    _connect(tenant, staff, 12)
    many, page = _count(client, reverse(url_name))
    assert many == few
    assert "Ada 3 (ext-12-3)" in page
    assert "HubSpot" in page
    assert "Sales 3" in page
    assert "sk_live_SECRET" not in page


def test_the_audit_log_shows_each_actor_readably_and_no_uuid(client, tenant, staff):
    _connect(tenant, staff, 1)
    page = client.get(reverse("admin:accounts_auditlogentry_changelist")).content.decode()
    assert "Grace Hopper &lt;grace@acme.test&gt;" in page
    assert "API key “Backend”" in page
    assert "Ada 0 (ext-1-0)" in page
    assert not UUID.search(_results_text(page))


TENANT_COLUMN_LISTS = [
    "admin:accounts_auditlogentry_changelist",
    "admin:integrations_event_changelist",
    "admin:integrations_app_changelist",
    "admin:integrations_flow_changelist",
    "admin:integrations_deployment_changelist",
    "admin:integrations_installation_changelist",
    "admin:integrations_credential_changelist",
    "admin:accounts_enduser_changelist",
    "admin:integrations_connectsession_changelist",
    "admin:integrations_webhookendpoint_changelist",
]


def test_a_single_tenants_staff_see_no_tenant_column_on_any_list(client, tenant, staff):
    _connect(tenant, staff, 1)
    for url_name in TENANT_COLUMN_LISTS:
        response = client.get(reverse(url_name))
        assert response.status_code == 200, url_name
        assert "column-tenant" not in response.content.decode(), url_name


def test_a_superuser_sees_which_tenant_each_row_is(client, tenant, staff):
    _connect(tenant, staff, 1)
    staff.is_superuser = True
    staff.save()
    page = client.get(reverse("admin:accounts_auditlogentry_changelist")).content.decode()
    assert "column-tenant" in page


def test_another_tenants_entries_and_events_are_not_listed(client, tenant, other_tenant, staff):
    _connect(other_tenant, staff, 1)
    for url_name in (
        "admin:accounts_auditlogentry_changelist",
        "admin:integrations_event_changelist",
    ):
        page = client.get(reverse(url_name)).content.decode()
        assert "Ada 0" not in page


def test_an_installations_entry_names_its_flow_and_end_user_not_an_id(client, tenant, staff):
    app = factories.make_api_key_app(name="HubSpot")
    flow = factories.make_flow(tenant=tenant, apps=[app], name="CRM sync")
    factories.make_deployment(tenant=tenant, flows=[flow])
    end_user = factories.make_end_user(tenant=tenant, external_id="crm-7", name="Ada")
    installation_install(end_user=end_user, flow=flow, actor=Actor.end_user(end_user.pk))

    page = client.get(reverse("admin:accounts_auditlogentry_changelist")).content.decode()

    visible = _results_text(page)
    assert "CRM sync" in visible
    assert "Ada (crm-7)" in visible
    assert not UUID.search(visible)
    whats = [entry.what for entry in end_user_timeline(end_user=end_user).entries]
    assert "Flow installed (CRM sync)" in whats


def test_the_end_users_page_reads_in_a_fixed_number_of_queries(client, tenant, staff):
    app = factories.make_api_key_app(name="HubSpot")
    end_user = factories.make_end_user(tenant=tenant, external_id="crm-8", name="Ada")

    def connect(n):
        for i in range(n):
            credential = factories.make_credential(end_user=end_user, app=app)
            credential_rename(credential=credential, label=f"Account {i}", actor=Actor.staff(staff))

    url = reverse("admin:accounts_enduser_change", args=[end_user.pk])
    connect(2)
    client.get(url)  # the first request fills Django's caches (content types)
    few, _ = _count(client, url)
    connect(10)
    many, page = _count(client, url)

    assert many == few
    assert "Account 9" in page
