"""One rule decides which apps end users can connect: enabled, and an OAuth2 app only with the
tenant's OAuth client. The modal, the admin and the API all read it from the selectors."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership
from integrations.selectors import (
    AppProblem,
    app_connectability,
    app_list_offered,
    app_problems_for_flows,
)
from integrations.services.connect_sessions import connect_session_create
from integrations.services.oauth_clients import oauth_client_set
from tests import factories
from tests.api.conftest import client_for, error_of


@pytest.fixture
def apps(tenant):
    made = {
        "stripe": factories.make_api_key_app(slug="stripe", name="Stripe"),
        "hubspot": factories.make_oauth_app(slug="hubspot", name="HubSpot"),
        "github": factories.make_oauth_app(slug="github", name="GitHub"),
        "old": factories.make_api_key_app(slug="old", name="Old CRM", is_enabled=False),
    }
    oauth_client_set(tenant=tenant, app=made["github"], client_id="cid", client_secret="secret")
    flow = factories.make_flow(tenant=tenant, apps=list(made.values()), name="Sync")
    factories.make_deployment(tenant=tenant, flows=[flow])
    return made


def test_an_oauth_app_without_the_tenants_client_and_a_disabled_app_are_not_offered(tenant, apps):
    assert sorted(app.slug for app in app_list_offered(tenant=tenant)) == ["github", "stripe"]


def test_another_tenants_oauth_client_does_not_make_the_app_connectable(tenant, other_tenant, apps):
    oauth_client_set(
        tenant=other_tenant, app=apps["hubspot"], client_id="theirs", client_secret="secret"
    )
    assert "hubspot" not in {app.slug for app in app_list_offered(tenant=tenant)}


def test_connectability_says_why_for_each_app(tenant, apps):
    found = app_connectability(tenant=tenant, apps=list(apps.values()))
    assert found[apps["stripe"].pk].connectable
    assert found[apps["github"].pk].connectable
    hubspot = found[apps["hubspot"].pk]
    assert hubspot.problem == AppProblem.NO_OAUTH_CLIENT
    assert hubspot.code == "oauth_client_missing"
    assert hubspot.reason.startswith("HubSpot has no OAuth client: end users will not see it.")
    assert found[apps["old"].pk].reason == "Old CRM is disabled: end users will not see it."


def test_the_selector_and_the_query_filter_agree(tenant, apps):
    """The per-app answer and the modal's filter are the same rule."""
    found = app_connectability(tenant=tenant, apps=list(apps.values()))
    listed = {app.pk for app in app_list_offered(tenant=tenant)}
    assert {pk for pk, entry in found.items() if entry.connectable} == listed


def test_a_session_deep_link_to_an_unconfigured_app_is_not_offered(client, tenant, end_user, apps):
    token = connect_session_create(tenant=tenant, end_user=end_user).token
    page = client.get(f"/connect/{token}/")
    assert page.status_code == 200
    assert "GitHub" in page.content.decode() and "HubSpot" not in page.content.decode()
    assert client.get(f"/connect/{token}/apps/hubspot/").status_code == 404


def test_the_flow_and_deployment_pages_warn_about_apps_end_users_will_not_see(client, tenant, apps):
    staff = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw-123456789", is_staff=True
    )
    Membership.objects.create(user=staff, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(staff)
    flow = tenant.flows.get()
    deployment = tenant.deployments.get()
    for url in (
        reverse("admin:integrations_flow_change", args=[flow.pk]),
        reverse("admin:integrations_deployment_change", args=[deployment.pk]),
    ):
        page = client.get(url)
        assert page.status_code == 200
        text = page.content.decode()
        assert "HubSpot has no OAuth client: end users will not see it." in text
        assert "Old CRM is disabled: end users will not see it." in text
        assert "GitHub has no OAuth client" not in text
    problems = app_problems_for_flows(tenant=tenant, flows=tenant.flows.all())
    assert [problem.app.slug for problem in problems] == ["hubspot", "old"]


def test_the_api_lists_apps_with_whether_they_are_connectable(tenant, apps):
    api = client_for(tenant)
    body = api.get("/api/v1/apps").json()
    by_slug = {entry["slug"]: entry for entry in body["data"]}
    assert set(by_slug) == {"stripe", "hubspot", "github", "old"}
    assert by_slug["github"] == {
        "slug": "github",
        "name": "GitHub",
        "auth_type": "oauth2",
        "custom": False,
        "logo_url": None,
        "offered": True,
        "connectable": True,
        "not_connectable": None,
    }
    assert by_slug["hubspot"]["connectable"] is False
    assert by_slug["hubspot"]["offered"] is False
    assert by_slug["hubspot"]["not_connectable"]["code"] == "oauth_client_missing"
    assert "end users will not see it" in by_slug["hubspot"]["not_connectable"]["message"]
    assert by_slug["old"]["not_connectable"]["code"] == "app_disabled"


def test_the_users_api_says_which_integrations_are_not_connectable(tenant, end_user, apps):
    factories.make_credential(end_user=end_user, app=apps["hubspot"])
    factories.make_credential(end_user=end_user, app=apps["stripe"])
    integrations = client_for(tenant).get("/api/v1/users/user-1").json()["integrations"]
    assert integrations["stripe"]["connectable"] is True
    assert integrations["stripe"]["not_connectable"] is None
    assert integrations["hubspot"]["connectable"] is False
    assert integrations["hubspot"]["not_connectable"]["code"] == "oauth_client_missing"


def test_a_session_naming_an_unconfigured_app_is_refused_with_the_reason(tenant, apps):
    response = client_for(tenant).post(
        "/api/v1/sessions",
        {"end_user": {"id": "user-9"}, "apps": ["github", "hubspot"]},
    )
    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "app_not_connectable"
    assert "HubSpot has no OAuth client" in error["message"]
    assert json.dumps(error).count("GitHub") == 0
