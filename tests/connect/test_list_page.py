"""The list page served from its memoised shell (connect/list_page.py): byte for byte the page
the template renders, never another session's, user's or tenant's parts, and every change to
what the shell shows at once."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connect import list_page
from integrations.models import App, ConnectSession, Credential
from integrations.services.connect_sessions import Handoff, connect_session_create
from tests import factories

pytestmark = pytest.mark.django_db

NONCE = re.compile(r"'nonce-([^']+)'")


def fetch(client, token: str, **params):
    return client.get(f"/connect/{token}/", params, HTTP_ACCEPT_LANGUAGE="en")


def normalised(response) -> tuple[int, bytes, dict]:
    """Status, body and headers with this response's CSP nonce replaced by a stand-in."""
    nonce = NONCE.search(response["Content-Security-Policy"]).group(1)
    headers = {
        name: value.replace(nonce, "NONCE")
        for name, value in response.headers.items()
        if name != "Content-Length"
    }
    return response.status_code, response.content.replace(nonce.encode(), b"NONCE"), headers


def without_shell(monkeypatch, client, token: str, **params):
    with monkeypatch.context() as patch:
        patch.setattr("connect.views.modal.list_page_html", lambda request, context: None)
        return fetch(client, token, **params)


@pytest.fixture
def tenant():
    tenant = factories.make_tenant(name="Acme & <Co>", allowed_origins=["https://app.acme.test"])
    apps = [
        factories.make_api_key_app(slug="alpha-notes", description="Alpha's notes"),
        factories.make_api_key_app(slug="beta-mail"),
    ]
    factories.make_deployment(tenant=tenant, flows=[factories.make_flow(tenant=tenant, apps=apps)])
    return tenant


def issue(tenant, end_user=None, **options) -> str:
    end_user = end_user or factories.make_end_user(tenant=tenant, name="Ann <Lee>")
    return connect_session_create(tenant=tenant, end_user=end_user, **options).token


VARIANTS = [
    ("plain", {}, {}),
    ("a search that matches", {}, {"q": "alpha"}),
    ("a search that matches nothing", {}, {"q": 'no "such" <app>'}),
    ("an app that is not offered (prompt, 404)", {}, {"app": "nope"}),
    ("the embedding parameters", {}, {"embed_origin": "https://app.acme.test", "hide_prompt": "1"}),
    ("the close button and a locale", {}, {"close_button": "1", "locale": "fr"}),
    ("an origin not allowed", {}, {"embed_origin": "https://evil.test"}),
    ("a session locale", {"locale": "ja"}, {}),
    (
        "a theme",
        {
            "theme": {
                "primary_color": "#ff0000",
                "vault_name": "Vault <1>",
                "logo_url": "https://cdn.test/logo.png",
                "favicon_url": "https://cdn.test/f.ico",
                "privacy_url": "https://acme.test/privacy",
                "terms_url": "https://acme.test/terms",
                "color_scheme": "dark",
            }
        },
        {},
    ),
    ("a hand-off link", {"handoff": Handoff(recipient_name="Bo")}, {}),
]


@pytest.mark.parametrize("options, params", [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_the_page_from_the_shell_is_the_page_the_template_renders(
    client, monkeypatch, tenant, options, params
):
    token = issue(tenant, **options)
    end_user = ConnectSession.objects.get(tenant=tenant).end_user
    factories.make_credential(end_user=end_user, app=App.objects.get(slug="alpha-notes"))
    factories.make_credential(
        end_user=end_user,
        app=App.objects.get(slug="beta-mail"),
        status="pending",
        identity="bo@beta.test",
    )
    list_page._shell_memo.clear()
    expected = without_shell(monkeypatch, client, token, **params)
    first = fetch(client, token, **params)  # renders the shell
    second = fetch(client, token, **params)  # from the memo
    assert normalised(first) == normalised(expected)
    assert normalised(second) == normalised(expected)
    # A search text or a prompt, which a link's holder may vary at will, is never memoised.
    assert bool(list_page._shell_memo) == ("q" not in params and "app" not in params)


def test_searches_do_not_fill_the_memo_and_the_looks_in_use_stay(client, tenant):
    token = issue(tenant)
    list_page._shell_memo.clear()
    fetch(client, token)
    held = dict(list_page._shell_memo)
    for n in range(list_page.SHELL_MEMO_SIZE + 5):
        assert fetch(client, token, q=f"x{n}").status_code == 200
    assert list_page._shell_memo == held


def test_a_theme_value_that_cannot_be_a_key_is_rendered_by_the_template(client, tenant):
    # Saved without validation (a raw update): the page still renders, as before the shell.
    type(tenant).objects.filter(pk=tenant.pk).update(default_theme={"logo_url": ["x"]})
    token = issue(tenant)

    response = fetch(client, token)

    assert response.status_code == 200
    assert b"alpha" in response.content.lower()


def test_sessions_of_other_users_and_tenants_get_their_own_token_names_and_accounts(client, tenant):
    other = factories.make_tenant(name="Other Inc")
    factories.make_deployment(
        tenant=other,
        flows=[factories.make_flow(tenant=other, apps=[App.objects.get(slug="beta-mail")])],
    )
    ann = factories.make_end_user(tenant=tenant, name="Ann")
    bob = factories.make_end_user(tenant=tenant, name="Bob")
    cy = factories.make_end_user(tenant=other, name="Cy")
    factories.make_credential(
        end_user=ann, app=App.objects.get(slug="beta-mail"), identity="ann@beta.test"
    )
    factories.make_credential(
        end_user=cy, app=App.objects.get(slug="beta-mail"), identity="cy@beta.test"
    )
    sessions = {
        "ann": issue(tenant, ann),
        "bob": issue(tenant, bob),
        "bob, hand-off": issue(tenant, bob, handoff=Handoff(recipient_name="Dee")),
        "cy": issue(other, cy),
    }
    pages = {}
    for _ in range(2):  # the second round is served from the memoised shells
        for name, token in sessions.items():
            response = fetch(client, token)
            assert response.status_code == 200
            pages[name] = response.content.decode()
    for name, page in pages.items():
        for other_name, token in sessions.items():
            assert (token in page) == (other_name == name), (name, other_name)
    assert "ann@beta.test" in pages["ann"] and "ann@beta.test" not in pages["bob"]
    assert "cy@beta.test" in pages["cy"] and "cy@beta.test" not in pages["ann"]
    assert "Other Inc" in pages["cy"] and "Other Inc" not in pages["ann"]
    assert "connecting accounts for Bob" in pages["bob, hand-off"]
    assert "connecting accounts for" not in pages["bob"]
    # Each page's nonce is its own, and the one its CSP header allows.
    nonces = set()
    for token in sessions.values():
        response = fetch(client, token)
        nonce = NONCE.search(response["Content-Security-Policy"]).group(1)
        assert f'nonce="{nonce}"'.encode() in response.content
        nonces.add(nonce)
    assert len(nonces) == len(sessions)


def test_a_changed_tenant_name_theme_or_end_user_shows_at_once(client, tenant):
    end_user = factories.make_end_user(tenant=tenant, name="Ann")
    token = issue(tenant, end_user, handoff=Handoff())
    page = fetch(client, token).content.decode()
    assert "Acme &amp; &lt;Co&gt;" in page and "connecting accounts for Ann" in page
    tenant.name = "Acme Renamed"
    tenant.default_theme = {"primary_color": "#00aa00", "vault_name": "Green Vault"}
    tenant.save()
    end_user.name = "Ann Renamed"
    end_user.save()
    page = fetch(client, token).content.decode()
    assert "Acme Renamed" in page and "Green Vault" in page
    assert "connecting accounts for Ann Renamed" in page


def test_an_account_changed_without_any_signal_shows_at_once(client, tenant):
    """The accounts are read with the session on every request: even a write that no code
    hears (a queryset update by a worker) shows on the next page."""
    end_user = factories.make_end_user(tenant=tenant)
    credential = factories.make_credential(
        end_user=end_user, app=App.objects.get(slug="alpha-notes"), identity="a@x.test"
    )
    token = issue(tenant, end_user)
    assert "badge--active" in fetch(client, token).content.decode()
    Credential.objects.filter(pk=credential.pk).update(status="expired", label="Work")
    page = fetch(client, token).content.decode()
    assert "badge--expired" in page and "badge--active" not in page and "Work" in page
    Credential.objects.filter(pk=credential.pk).delete()
    assert "a@x.test" not in fetch(client, token).content.decode()


def test_the_list_page_is_one_query_on_postgresql(client, tenant):
    if connection.vendor != "postgresql":
        pytest.skip("The accounts ride with the session lookup on PostgreSQL only.")
    token = issue(tenant)
    fetch(client, token)  # records when the session was used, caches the catalog
    with CaptureQueriesContext(connection) as queries:
        assert fetch(client, token).status_code == 200
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
