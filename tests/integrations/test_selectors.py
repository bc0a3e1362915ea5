"""The modal's app list follows DESIGN.md's rules, in a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.selectors import (
    app_list_for_session,
    app_list_offered,
    offered_apps_with_credentials,
)
from integrations.services.connect_sessions import connect_session_create
from tests import factories


@pytest.fixture
def catalog(tenant):
    apps = {
        name: factories.make_api_key_app(slug=name)
        for name in ("alpha", "beta", "gamma", "delta", "own")
    }
    apps["draft-only"] = factories.make_api_key_app(slug="draft-only")
    apps["inactive-only"] = factories.make_api_key_app(slug="inactive-only")
    apps["other-deployment"] = factories.make_api_key_app(slug="other-deployment")
    apps["unused"] = factories.make_api_key_app(slug="unused")
    tenant.own_app = apps["own"]
    tenant.save()
    main_flow = factories.make_flow(
        tenant=tenant, apps=[apps["alpha"], apps["beta"], apps["gamma"], apps["own"]]
    )
    draft = factories.make_flow(tenant=tenant, apps=[apps["draft-only"]], published=False)
    inactive_flow = factories.make_flow(tenant=tenant, apps=[apps["inactive-only"]])
    other_flow = factories.make_flow(tenant=tenant, apps=[apps["other-deployment"], apps["delta"]])
    main = factories.make_deployment(tenant=tenant, flows=[main_flow, draft])
    factories.make_deployment(tenant=tenant, flows=[inactive_flow], active=False)
    other = factories.make_deployment(tenant=tenant, flows=[other_flow])
    return apps, main, other


def _slugs(apps):
    return sorted(app.slug for app in apps)


def test_listed_apps_are_those_of_published_flows_in_active_deployments(tenant, catalog):
    assert _slugs(app_list_offered(tenant=tenant)) == [
        "alpha",
        "beta",
        "delta",
        "gamma",
        "other-deployment",
    ]


def test_the_tenants_own_app_is_never_listed(tenant, catalog):
    assert "own" not in _slugs(app_list_offered(tenant=tenant))


def test_a_session_with_a_deployment_lists_only_that_deployments_apps(tenant, end_user, catalog):
    _, main, other = catalog
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=main)
    assert _slugs(app_list_for_session(session=issued.session)) == ["alpha", "beta", "gamma"]
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=other)
    assert _slugs(app_list_for_session(session=issued.session)) == ["delta", "other-deployment"]


def test_an_allowlist_narrows_the_list_and_cannot_add_unused_apps(tenant, end_user, catalog):
    apps, main, _ = catalog
    issued = connect_session_create(
        tenant=tenant,
        end_user=end_user,
        deployment=main,
        apps=[apps["beta"], apps["delta"], apps["unused"]],
    )
    assert _slugs(app_list_for_session(session=issued.session)) == ["beta"]


def test_another_tenants_flows_never_list_apps(tenant, other_tenant, end_user, catalog):
    apps, _, _ = catalog
    foreign = factories.make_flow(tenant=other_tenant, apps=[apps["unused"]])
    factories.make_deployment(tenant=other_tenant, flows=[foreign])
    issued = connect_session_create(tenant=tenant, end_user=end_user)
    assert "unused" not in _slugs(app_list_for_session(session=issued.session))
    assert _slugs(app_list_offered(tenant=other_tenant)) == ["unused"]


def test_another_tenants_custom_app_is_never_listed(tenant, other_tenant, catalog):
    _, main, _ = catalog
    foreign_app = factories.make_api_key_app(slug="theirs", tenant=other_tenant)
    flow = factories.make_flow(tenant=tenant, apps=[foreign_app])
    main.flows.add(flow)
    assert "theirs" not in _slugs(app_list_offered(tenant=tenant))


def test_each_app_comes_with_only_this_end_users_credentials(tenant, end_user, catalog):
    apps, main, _ = catalog
    mine = factories.make_credential(end_user=end_user, app=apps["alpha"])
    someone_else = factories.make_end_user(tenant=tenant)
    factories.make_credential(end_user=someone_else, app=apps["alpha"])
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=main)
    offered = {
        item.app.slug: item.credentials
        for item in offered_apps_with_credentials(session=issued.session)
    }
    assert offered["alpha"] == [mine]
    assert offered["beta"] == []


def _session_with_apps(tenant, end_user, count):
    apps = [factories.make_api_key_app() for _ in range(count)]
    flow = factories.make_flow(tenant=tenant, apps=apps)
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    for app in apps:
        factories.make_credential(end_user=end_user, app=app)
        factories.make_credential(end_user=end_user, app=app)
    restricted = connect_session_create(
        tenant=tenant, end_user=end_user, deployment=deployment, apps=apps[: count // 2 or 1]
    )
    open_session = connect_session_create(tenant=tenant, end_user=end_user)
    return restricted.session, open_session.session


@pytest.mark.parametrize("count", [5, 200])
def test_the_app_list_with_accounts_takes_a_fixed_number_of_queries(tenant, end_user, count):
    restricted, open_session = _session_with_apps(tenant, end_user, count)
    for session, expected_apps in ((restricted, count // 2 or 1), (open_session, count)):
        with CaptureQueriesContext(connection) as queries:
            offered = offered_apps_with_credentials(session=session)
        assert len(offered) == expected_apps
        assert all(len(item.credentials) == 2 for item in offered)
        assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]
