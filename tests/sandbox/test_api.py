"""The sandbox's protected API over HTTP: bearer tokens, API keys and Basic email:key."""

from __future__ import annotations

import re

import pytest
import requests

from sandbox.services import sandbox_api_key_create, sandbox_api_key_revoke
from tests.sandbox.helpers import TIMEOUT, form_fields, obtain_tokens, sandbox_sign_in

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_accounts", "oauth_client"),
]


def _get(base_url: str, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{base_url}/sandbox/api/{path}", timeout=TIMEOUT, **kwargs)


def test_me_with_a_valid_api_key_answers_the_account(live_server, sandbox_accounts):
    bob = sandbox_accounts["bob@sandbox.test"]
    _api_key, key = sandbox_api_key_create(account=bob, name="portal")

    response = _get(live_server.url, "me", headers={"X-API-Key": key})

    assert response.status_code == 200
    assert response.json() == {
        "id": str(bob.pk),
        "email": "bob@sandbox.test",
        "name": "Bob Sandbox",
        "login": "bob",
    }
    assert "Set-Cookie" not in response.headers


def test_me_with_a_wrong_api_key_is_401_unknown_key(live_server, sandbox_accounts):
    _api_key, key = sandbox_api_key_create(account=sandbox_accounts["bob@sandbox.test"], name="x")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    response = _get(live_server.url, "me", headers={"X-API-Key": wrong})

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The API key is unknown.",
    }
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="sandbox"')


def test_me_with_a_revoked_api_key_is_401_revoked(live_server, sandbox_accounts):
    api_key, key = sandbox_api_key_create(account=sandbox_accounts["bob@sandbox.test"], name="x")
    sandbox_api_key_revoke(api_key=api_key)

    response = _get(live_server.url, "me", headers={"X-API-Key": key})

    assert response.status_code == 401
    assert response.json()["error_description"] == "The API key has been revoked."


def test_me_with_basic_email_and_api_key_answers_the_account(live_server, sandbox_accounts):
    carol = sandbox_accounts["carol@sandbox.test"]
    _api_key, key = sandbox_api_key_create(account=carol, name="basic")

    response = _get(live_server.url, "me", auth=("carol@sandbox.test", key))

    assert response.status_code == 200
    assert response.json()["login"] == "carol"


def test_me_with_basic_auth_for_another_email_is_refused(live_server, sandbox_accounts):
    _api_key, key = sandbox_api_key_create(account=sandbox_accounts["carol@sandbox.test"], name="b")

    response = _get(live_server.url, "me", auth=("alice@sandbox.test", key))

    assert response.status_code == 401
    assert response.json()["error_description"] == "The API key does not belong to this email."


def test_me_without_a_credential_is_401_missing(live_server):
    response = _get(live_server.url, "me")

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_token"
    assert body["error_description"].startswith("No credential")
    assert "WWW-Authenticate" in response.headers
    assert "Set-Cookie" not in response.headers


def test_me_with_an_unknown_bearer_token_is_401(live_server):
    response = _get(live_server.url, "me", headers={"Authorization": "Bearer not-a-real-token"})

    assert response.status_code == 401
    assert (
        response.json()["error_description"] == "The access token is unknown or has been revoked."
    )


def test_items_list_only_the_accounts_own_items(live_server, sandbox_accounts):
    _api_key, key = sandbox_api_key_create(account=sandbox_accounts["alice@sandbox.test"], name="i")

    response = _get(live_server.url, "items", headers={"X-API-Key": key})

    assert response.status_code == 200
    titles = [item["title"] for item in response.json()]
    assert titles == ["Alice's first item", "Alice's second item"]


def test_post_item_with_a_bearer_token_creates_it_for_that_account(live_server):
    tokens = obtain_tokens(live_server.url, email="bob@sandbox.test")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    created = requests.post(
        f"{live_server.url}/sandbox/api/items",
        json={"title": "Made through the API"},
        headers=headers,
        timeout=TIMEOUT,
    )

    assert created.status_code == 201
    assert created.json()["title"] == "Made through the API"
    assert "Set-Cookie" not in created.headers
    listed = _get(live_server.url, "items", headers=headers).json()
    assert listed[-1] == created.json()
    assert len(listed) == 3


def test_post_item_without_a_title_is_400_and_creates_nothing(live_server, sandbox_accounts):
    _api_key, key = sandbox_api_key_create(account=sandbox_accounts["alice@sandbox.test"], name="i")

    response = requests.post(
        f"{live_server.url}/sandbox/api/items",
        json={"title": "  "},
        headers={"X-API-Key": key},
        timeout=TIMEOUT,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert len(_get(live_server.url, "items", headers={"X-API-Key": key}).json()) == 2


def test_post_item_without_a_credential_is_401(live_server):
    response = requests.post(
        f"{live_server.url}/sandbox/api/items", json={"title": "nope"}, timeout=TIMEOUT
    )

    assert response.status_code == 401


def test_api_key_created_on_the_keys_page_works_once_shown_and_stops_when_revoked(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url, email="alice@sandbox.test")
    page = session.get(f"{live_server.url}/sandbox/keys/", timeout=TIMEOUT)
    fields = form_fields(page.text, action="/sandbox/keys/")
    fields["name"] = "Connect portal"

    created = session.post(f"{live_server.url}/sandbox/keys/", data=fields, timeout=TIMEOUT)

    assert created.status_code == 200
    key = re.search(r'<code id="new-api-key">(sbx_[^<]+)</code>', created.text).group(1)
    assert _get(live_server.url, "me", headers={"X-API-Key": key}).json()["login"] == "alice"
    listing = session.get(f"{live_server.url}/sandbox/keys/", timeout=TIMEOUT)
    assert key not in listing.text
    assert key[:12] in listing.text

    revoke_action = re.search(r'action="(/sandbox/keys/\d+/revoke/)"', listing.text).group(1)
    revoked = session.post(
        live_server.url + revoke_action,
        data=form_fields(listing.text, action=revoke_action),
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert revoked.status_code == 302
    assert _get(live_server.url, "me", headers={"X-API-Key": key}).status_code == 401
