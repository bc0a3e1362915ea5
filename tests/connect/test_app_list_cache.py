"""The modal's cached app list (connect/app_list.py): a session never sees another session's,
user's or tenant's list, every write that changes the catalog or an account shows at once,
and nothing secret is cached."""

from __future__ import annotations

import pickle

import pytest
from django.core.cache import cache

from accounts.services.audit import Actor
from connect.app_list import catalog_key
from integrations.models import App, Credential, Deployment, Flow, TenantOAuthClient
from integrations.selectors import connect_session_for_token
from integrations.services.connect_sessions import connect_session_create
from integrations.services.credentials import (
    NewSecret,
    credential_create,
    credential_delete,
    credential_mark_invalid,
    credential_reconnect,
)
from integrations.services.installations import flow_publish
from integrations.services.oauth_clients import oauth_client_set
from tests import factories

pytestmark = pytest.mark.django_db


def listed(client, token: str, **params) -> str:
    response = client.get(f"/connect/{token}/", params)
    assert response.status_code == 200
    return response.content.decode()


def session_token(tenant, end_user, **options) -> str:
    return connect_session_create(tenant=tenant, end_user=end_user, **options).token


@pytest.fixture
def world():
    """One tenant: two deployments of one app each, an OAuth app, two end users."""
    tenant = factories.make_tenant(name="Acme")
    alpha = factories.make_api_key_app(slug="alpha-notes", description="Alpha's notes")
    beta = factories.make_api_key_app(slug="beta-mail")
    oauth = factories.make_oauth_app(slug="gamma-drive")
    first = factories.make_deployment(
        tenant=tenant, flows=[factories.make_flow(tenant=tenant, apps=[alpha])]
    )
    second = factories.make_deployment(
        tenant=tenant, flows=[factories.make_flow(tenant=tenant, apps=[beta, oauth])]
    )
    ann = factories.make_end_user(tenant=tenant)
    bob = factories.make_end_user(tenant=tenant)
    factories.make_credential(end_user=ann, app=alpha, identity="ann@alpha.test")
    return {
        "tenant": tenant,
        "alpha": alpha,
        "beta": beta,
        "oauth": oauth,
        "first": first,
        "second": second,
        "ann": ann,
        "bob": bob,
    }


def test_sessions_of_other_users_deployments_allowlists_locales_and_tenants_never_share_a_list(
    client, world
):
    tenant, ann, bob = world["tenant"], world["ann"], world["bob"]
    other = factories.make_tenant(name="Other")
    own = factories.make_api_key_app(slug="delta-own", tenant=other)
    factories.make_deployment(
        tenant=other, flows=[factories.make_flow(tenant=other, apps=[own, world["alpha"]])]
    )
    carol = factories.make_end_user(tenant=other)
    tokens = {
        "ann, first": session_token(tenant, ann, deployment=world["first"]),
        "bob, first": session_token(tenant, bob, deployment=world["first"]),
        "ann, second": session_token(tenant, ann, deployment=world["second"]),
        "ann, all": session_token(tenant, ann),
        "ann, beta only": session_token(tenant, ann, apps=[world["beta"]]),
        "ann, all, fr": session_token(tenant, ann, locale="fr"),
        "carol, other tenant": session_token(other, carol),
    }
    # Twice each, in turn: the second round is served from the cache.
    pages = {}
    for _ in range(2):
        for name, token in tokens.items():
            pages[name] = listed(client, token)

    def shows(name: str) -> set[str]:
        page = pages[name]
        found = {slug for slug in ("alpha-notes", "beta-mail", "gamma-drive", "delta-own")}
        return {slug for slug in found if f"/apps/{slug}/" in page}

    assert shows("ann, first") == {"alpha-notes"}
    assert "ann@alpha.test" in pages["ann, first"]
    assert shows("bob, first") == {"alpha-notes"}
    assert "ann@alpha.test" not in pages["bob, first"]
    assert shows("ann, second") == {"beta-mail"}  # the OAuth app has no client: not offered
    assert shows("ann, all") == {"alpha-notes", "beta-mail"}
    assert shows("ann, beta only") == {"beta-mail"}
    assert shows("carol, other tenant") == {"alpha-notes", "delta-own"}
    assert "ann@alpha.test" not in pages["carol, other tenant"]
    assert "Connecter" in pages["ann, all, fr"] and "Connecter" not in pages["ann, all"]
    # Each page links with its own token only.
    for name in tokens:
        for other_name, other_token in tokens.items():
            assert (other_token in pages[name]) == (other_name == name)


def test_the_cache_key_holds_everything_that_scopes_the_list(world):
    tenant, ann = world["tenant"], world["ann"]
    other = factories.make_tenant(name="Other")
    variants = [
        session_token(tenant, ann, deployment=world["first"]),
        session_token(tenant, ann, deployment=world["second"]),
        session_token(tenant, ann, apps=[world["beta"]]),
        session_token(tenant, ann, apps=[world["alpha"]]),
        session_token(other, factories.make_end_user(tenant=other)),
    ]
    # (Setting a session's allowlist moves the tenant's version: read the keys after.)
    base = connect_session_for_token(token=session_token(tenant, ann))
    keys = {catalog_key(connect_session_for_token(token=token)) for token in variants}
    assert catalog_key(base) not in keys and len(keys) == len(variants)
    # Another end user of the same tenant with the same scope shares the catalog (not accounts).
    bob = connect_session_for_token(token=session_token(tenant, world["bob"]))
    assert catalog_key(bob) == catalog_key(base)


def test_nothing_secret_is_cached(client, world):
    tenant, ann = world["tenant"], world["ann"]
    oauth_client_set(
        tenant=tenant, app=world["oauth"], client_id="cid", client_secret="client-secret-value"
    )
    token = session_token(tenant, ann)
    assert "gamma-drive" in listed(client, token)
    entry = cache.get(catalog_key(connect_session_for_token(token=token)))
    assert entry is not None
    stored = pickle.dumps(entry)
    for secret in (token, "client-secret-value", "cid", "ann@alpha.test", "api_key"):
        assert secret.encode() not in stored


def test_connect_reconnect_invalid_and_disconnect_show_at_once(client, world):
    tenant, ann, beta = world["tenant"], world["ann"], world["beta"]
    token = session_token(tenant, ann, deployment=world["second"])
    assert "ann@beta.test" not in listed(client, token)

    credential = credential_create(
        end_user=ann,
        app=beta,
        new=NewSecret(secret={"api_key": "k1"}),
        identity="ann@beta.test",
        label="",
        actor=Actor.system(),
    )
    page = listed(client, token)
    assert "ann@beta.test" in page and "badge--active" in page

    credential_mark_invalid(credential=credential, reason="Refused.", actor=Actor.system())
    assert "badge--invalid" in listed(client, token)

    credential_reconnect(
        credential=Credential.objects.get(pk=credential.pk),
        new=NewSecret(secret={"api_key": "k2"}),
        identity="ann@beta.test",
        actor=Actor.system(),
    )
    page = listed(client, token)
    assert "badge--active" in page and "badge--invalid" not in page

    credential_delete(credential=Credential.objects.get(pk=credential.pk), actor=Actor.system())
    assert "ann@beta.test" not in listed(client, token)


def catalog_writes(world):
    """Each write that changes the catalog, and what the list of "ann, all" shows after it."""
    tenant, alpha, beta, oauth = world["tenant"], world["alpha"], world["beta"], world["oauth"]

    def rename_app():
        alpha.name = "Alpha Renamed"
        alpha.save()
        return "Alpha Renamed"

    def describe_app():
        beta.description = "Fresh description"
        beta.save(update_fields=["description", "updated_at"])
        return "Fresh description"

    def disable_app():
        alpha.is_enabled = False
        alpha.save()
        return "-alpha-notes"

    def add_oauth_client():
        oauth_client_set(tenant=tenant, app=oauth, client_id="cid", client_secret="s")
        return "gamma-drive"

    def unpublish_flow():
        flow = Flow.objects.get(apps=beta)
        flow.status = Flow.Status.DRAFT
        flow.save()
        return "-beta-mail"

    def publish_flow():
        flow = factories.make_flow(tenant=tenant, apps=[], published=False)
        world["second"].flows.add(flow)
        flow.apps.add(factories.make_api_key_app(slug="epsilon-crm"))
        flow_publish(flow=flow, actor=Actor.system())
        flow.status = Flow.Status.PUBLISHED
        flow.save()
        return "epsilon-crm"

    def deactivate_deployment():
        deployment = Deployment.objects.get(pk=world["first"].pk)
        deployment.is_active = False
        deployment.save()
        return "-alpha-notes"

    def remove_flow_from_deployment():
        world["second"].flows.clear()
        return "-beta-mail"

    def remove_app_from_flow():
        Flow.objects.get(apps=alpha).apps.remove(alpha)
        return "-alpha-notes"

    def app_removed_from_flows_from_the_app_side():
        beta.flows.clear()
        return "-beta-mail"

    def tenant_own_app():
        tenant.own_app = alpha
        tenant.save()
        return "-alpha-notes"

    def delete_app():
        App.objects.filter(pk=beta.pk).first().delete()
        return "-beta-mail"

    return [
        rename_app,
        describe_app,
        disable_app,
        add_oauth_client,
        unpublish_flow,
        publish_flow,
        deactivate_deployment,
        remove_flow_from_deployment,
        remove_app_from_flow,
        app_removed_from_flows_from_the_app_side,
        tenant_own_app,
        delete_app,
    ]


@pytest.mark.parametrize("index", range(12))
def test_every_catalog_write_shows_at_once(client, world, index):
    write = catalog_writes(world)[index]
    token = session_token(world["tenant"], world["ann"])
    before = listed(client, token)
    # Served from the cache now (the page's CSP nonce differs; the list does not).
    assert listed(client, token).split('id="app-list"')[1] == before.split('id="app-list"')[1]
    expected = write()
    after = listed(client, token)
    if expected.startswith("-"):
        assert f"/apps/{expected[1:]}/" in before and f"/apps/{expected[1:]}/" not in after
    else:
        assert expected not in before and expected in after


def test_an_oauth_client_removed_takes_its_app_off_at_once(client, world):
    oauth_client_set(tenant=world["tenant"], app=world["oauth"], client_id="c", client_secret="s")
    token = session_token(world["tenant"], world["ann"])
    assert "/apps/gamma-drive/" in listed(client, token)
    TenantOAuthClient.objects.get(tenant=world["tenant"], app=world["oauth"]).delete()
    assert "/apps/gamma-drive/" not in listed(client, token)


def test_a_catalog_app_changed_shows_in_every_tenant(client, world):
    other = factories.make_tenant(name="Other")
    factories.make_deployment(
        tenant=other, flows=[factories.make_flow(tenant=other, apps=[world["alpha"]])]
    )
    tokens = [
        session_token(world["tenant"], world["ann"]),
        session_token(other, factories.make_end_user(tenant=other)),
    ]
    for token in tokens:
        assert "Alpha Notes" in listed(client, token)
    world["alpha"].name = "Alpha Everywhere"
    world["alpha"].save()
    for token in tokens:
        assert "Alpha Everywhere" in listed(client, token)


def test_a_write_seen_by_another_process_whose_cache_kept_an_old_entry(client, world):
    """The version is in the database: a process whose (fallback) cache still holds the old
    entry does not find it under the new key."""
    token = session_token(world["tenant"], world["ann"])
    session = connect_session_for_token(token=token)
    listed(client, token)
    old_key = catalog_key(session)
    world["alpha"].name = "Alpha Moved"
    world["alpha"].save()
    assert cache.get(old_key) is not None  # nobody deleted it
    assert catalog_key(connect_session_for_token(token=token)) != old_key
    assert "Alpha Moved" in listed(client, token)
