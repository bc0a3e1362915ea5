"""The sandbox's OAuth2 server, driven over HTTP by a real client: authorization code with PKCE."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from oauth2_provider.models import AccessToken

from tests.sandbox.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    TIMEOUT,
    authorize_params,
    consent,
    exchange_code,
    location_params,
    obtain_tokens,
    pkce_pair,
    sandbox_sign_in,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_accounts", "oauth_client"),
]


def _me(base_url: str, access_token: str) -> requests.Response:
    return requests.get(
        f"{base_url}/sandbox/api/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )


def _refresh(base_url: str, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{base_url}/sandbox/o/token/",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    )


def test_authorization_code_with_pkce_yields_a_token_for_the_signed_in_account(
    live_server, sandbox_accounts
):
    session = requests.Session()
    signed_in = sandbox_sign_in(session, live_server.url)
    assert signed_in.status_code == 302
    verifier, challenge = pkce_pair()

    redirect = consent(session, live_server.url, code_challenge=challenge, allow=True)

    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith(REDIRECT_URI + "?")
    params = location_params(redirect)
    assert params["state"] == "state-123"
    token = exchange_code(live_server.url, code=params["code"], code_verifier=verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {"profile", "items"}
    assert body["refresh_token"]
    me = _me(live_server.url, body["access_token"])
    assert me.status_code == 200
    alice = sandbox_accounts["alice@sandbox.test"]
    assert me.json() == {
        "id": str(alice.pk),
        "email": "alice@sandbox.test",
        "name": "Alice Sandbox",
        "login": "alice",
    }


def test_code_exchange_with_a_wrong_code_verifier_is_refused(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)
    _verifier, challenge = pkce_pair()
    redirect = consent(session, live_server.url, code_challenge=challenge, allow=True)
    other_verifier, _ = pkce_pair()

    token = exchange_code(
        live_server.url, code=location_params(redirect)["code"], code_verifier=other_verifier
    )

    assert token.status_code == 400
    assert token.json()["error"] == "invalid_grant"
    assert "access_token" not in token.json()


def test_authorization_code_can_be_exchanged_only_once(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)
    verifier, challenge = pkce_pair()
    code = location_params(consent(session, live_server.url, code_challenge=challenge, allow=True))[
        "code"
    ]
    assert exchange_code(live_server.url, code=code, code_verifier=verifier).status_code == 200

    again = exchange_code(live_server.url, code=code, code_verifier=verifier)

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_authorize_without_code_challenge_is_refused_because_pkce_is_required(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)

    response = session.get(
        f"{live_server.url}/sandbox/o/authorize/",
        params=authorize_params(code_challenge=None),
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert response.status_code == 302
    params = location_params(response)
    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_denying_consent_redirects_back_with_access_denied(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)
    _verifier, challenge = pkce_pair()

    redirect = consent(session, live_server.url, code_challenge=challenge, allow=False)

    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith(REDIRECT_URI + "?")
    params = location_params(redirect)
    assert params["error"] == "access_denied"
    assert params["state"] == "state-123"
    assert "code" not in params


def test_consent_page_shows_the_application_and_requested_scopes(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)
    _verifier, challenge = pkce_pair()

    page = session.get(
        f"{live_server.url}/sandbox/o/authorize/",
        params=authorize_params(code_challenge=challenge),
        timeout=TIMEOUT,
    )

    assert page.status_code == 200
    assert "Connect portal" in page.text
    assert "Read your profile" in page.text
    assert "Read and write your items" in page.text
    assert "alice@sandbox.test" in page.text


def test_authorize_when_not_signed_in_redirects_to_the_sandbox_login(live_server):
    _verifier, challenge = pkce_pair()

    response = requests.get(
        f"{live_server.url}/sandbox/o/authorize/",
        params=authorize_params(code_challenge=challenge),
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sandbox/login/?")
    next_url = location_params(response)["next"]
    assert next_url.startswith("/sandbox/o/authorize/?")
    assert f"code_challenge={challenge}" in next_url


def test_signing_in_from_the_authorize_redirect_returns_to_the_consent_page(live_server):
    session = requests.Session()
    _verifier, challenge = pkce_pair()
    first = session.get(
        f"{live_server.url}/sandbox/o/authorize/",
        params=authorize_params(code_challenge=challenge),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    next_url = location_params(first)["next"]

    signed_in = sandbox_sign_in(session, live_server.url, next_url=next_url)

    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == next_url
    page = session.get(live_server.url + next_url, timeout=TIMEOUT)
    assert 'id="authorizationForm"' in page.text


def test_refresh_rotates_the_refresh_token_and_refuses_the_old_one(live_server):
    tokens = obtain_tokens(live_server.url)

    rotated = _refresh(live_server.url, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != tokens["refresh_token"]
    assert second["access_token"] != tokens["access_token"]
    assert _me(live_server.url, second["access_token"]).status_code == 200

    newest = _refresh(live_server.url, second["refresh_token"])
    assert newest.status_code == 200, newest.text

    reused = _refresh(live_server.url, tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_revoked_access_token_is_refused_by_the_api(live_server):
    tokens = obtain_tokens(live_server.url)
    assert _me(live_server.url, tokens["access_token"]).status_code == 200

    revoked = requests.post(
        f"{live_server.url}/sandbox/o/revoke_token/",
        data={"token": tokens["access_token"], "token_type_hint": "access_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    )

    assert revoked.status_code == 200
    me = _me(live_server.url, tokens["access_token"])
    assert me.status_code == 401
    assert me.json()["error"] == "invalid_token"
    assert "revoked" in me.json()["error_description"]
    assert me.headers["WWW-Authenticate"].startswith("Bearer ")


def test_expired_access_token_is_refused_by_the_api(live_server):
    tokens = obtain_tokens(live_server.url)
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))

    me = _me(live_server.url, tokens["access_token"])

    assert me.status_code == 401
    assert me.json() == {
        "error": "invalid_token",
        "error_description": "The access token has expired.",
    }
    assert 'error="invalid_token"' in me.headers["WWW-Authenticate"]


def test_token_endpoint_refuses_a_wrong_client_secret(live_server):
    session = requests.Session()
    sandbox_sign_in(session, live_server.url)
    verifier, challenge = pkce_pair()
    code = location_params(consent(session, live_server.url, code_challenge=challenge, allow=True))[
        "code"
    ]

    response = requests.post(
        f"{live_server.url}/sandbox/o/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(CLIENT_ID, "not-the-secret"),
        timeout=TIMEOUT,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
