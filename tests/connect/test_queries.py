"""The modal's pages and partials use a fixed number of queries, whatever the number of apps
and accounts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.catalog_changes import catalog_changed
from integrations.services.connect_sessions import connect_session_create
from tests import factories


def build(count: int) -> tuple[str, str]:
    """A tenant offering ``count`` apps, the end user holding two accounts on each."""
    tenant = factories.make_tenant(name=f"Tenant {count}")
    user = factories.make_end_user(tenant=tenant)
    apps = [factories.make_api_key_app(slug=f"app-{count}-{n}") for n in range(count)]
    flow = factories.make_flow(tenant=tenant, apps=apps)
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    for app in apps:
        factories.make_credential(end_user=user, app=app, identity=f"a@{app.slug}")
        factories.make_credential(
            end_user=user, app=app, identity=f"b@{app.slug}", status="invalid"
        )
    token = connect_session_create(tenant=tenant, end_user=user, deployment=deployment).token
    return token, apps[0].slug


def count_queries(client, url: str, **headers) -> int:
    client.get(url, **headers)  # first use records when the session was used
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    assert response.status_code == 200
    return len(queries)


HTMX = {"HTTP_HX_REQUEST": "true"}


PAGES = [
    ("list page", "", {}),
    ("list partial (search as you type)", "?q=app", {**HTMX, "HTTP_HX_TARGET": "app-list"}),
    ("list view partial", "", HTMX),
    ("deep link page", "?app={slug}", {}),
    ("app panel partial", "apps/{slug}/", HTMX),
]


@pytest.mark.django_db
def test_the_list_page_and_its_partials_use_as_many_queries_for_200_apps_as_for_5(client):
    small_token, small_slug = build(5)
    large_token, large_slug = build(200)

    counts = {}
    for name, path, headers in PAGES:
        small = count_queries(
            client, f"/connect/{small_token}/" + path.format(slug=small_slug), **headers
        )
        large = count_queries(
            client, f"/connect/{large_token}/" + path.format(slug=large_slug), **headers
        )
        counts[name] = (small, large)

    assert all(small == large for small, large in counts.values()), counts
    assert all(large <= 5 for _, large in counts.values()), counts


@pytest.mark.django_db
def test_the_list_asks_the_database_only_for_the_session_and_its_accounts_once_cached(client):
    counts = {}
    for count in (5, 200):
        token, _ = build(count)
        url = f"/connect/{token}/"
        client.get(url)  # first use records when the session was used
        catalog_changed(tenant_ids=None)  # a new catalog version: nothing cached under it
        with CaptureQueriesContext(connection) as cold:
            assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as warm:
            assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as search:
            assert client.get(url, {"q": "app"}, HTTP_HX_REQUEST="true").status_code == 200
        counts[count] = (len(cold), len(warm), len(search))

    # Cold: the session (with the accounts, on PostgreSQL) and the catalog; then the catalog
    # comes from the cache. Elsewhere the accounts are a query of their own.
    expected = (2, 1, 1) if connection.vendor == "postgresql" else (3, 2, 2)
    assert counts == {5: expected, 200: expected}, counts
