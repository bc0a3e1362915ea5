"""Helpers that drive the sandbox provider the way an OAuth client and a browser do."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests

from sandbox.services import SANDBOX_PASSWORD

CLIENT_ID = "connect-portal-test"
CLIENT_SECRET = "portal-test-client-secret"
REDIRECT_URI = "https://client.example.com/callback"
TIMEOUT = 10


class _FormFields(HTMLParser):
    """The named inputs of the first form matching ``form_id`` or ``action``."""

    def __init__(self, *, form_id: str | None, action: str | None) -> None:
        super().__init__()
        self.form_id, self.action = form_id, action
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and not self.found:
            matches_id = self.form_id is not None and attributes.get("id") == self.form_id
            matches_action = self.action is not None and attributes.get("action") == self.action
            self.inside = self.found = matches_id or matches_action
        elif tag == "input" and self.inside and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_fields(html: str, *, form_id: str | None = None, action: str | None = None) -> dict:
    parser = _FormFields(form_id=form_id, action=action)
    parser.feed(html)
    assert parser.found, f"no form with id={form_id!r} action={action!r} in the page"
    return parser.fields


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def location_params(response: requests.Response) -> dict[str, str]:
    location = response.headers["Location"]
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def sandbox_sign_in(
    session: requests.Session,
    base_url: str,
    *,
    email: str = "alice@sandbox.test",
    password: str = SANDBOX_PASSWORD,
    next_url: str | None = None,
) -> requests.Response:
    """Fill in the sandbox's sign-in form like a browser, CSRF token included."""
    params = {"next": next_url} if next_url else {}
    page = session.get(f"{base_url}/sandbox/login/", params=params, timeout=TIMEOUT)
    assert page.status_code == 200
    fields = form_fields(page.text, action="/sandbox/login/")
    fields.update(email=email, password=password)
    return session.post(
        f"{base_url}/sandbox/login/", data=fields, allow_redirects=False, timeout=TIMEOUT
    )


def authorize_params(*, code_challenge: str | None, state: str = "state-123") -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "profile items",
        "state": state,
    }
    if code_challenge is not None:
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    return params


def consent(
    session: requests.Session, base_url: str, *, code_challenge: str, allow: bool
) -> requests.Response:
    """Open the consent page and press Allow or Deny; the redirect is returned, not followed."""
    page = session.get(
        f"{base_url}/sandbox/o/authorize/",
        params=authorize_params(code_challenge=code_challenge),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert page.status_code == 200, page.text
    fields = form_fields(page.text, form_id="authorizationForm")
    if allow:
        fields["allow"] = "on"
    return session.post(page.url, data=fields, allow_redirects=False, timeout=TIMEOUT)


def exchange_code(base_url: str, *, code: str, code_verifier: str) -> requests.Response:
    return requests.post(
        f"{base_url}/sandbox/o/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": code_verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    )


def obtain_tokens(base_url: str, *, email: str = "alice@sandbox.test") -> dict:
    """Run the whole authorization code + PKCE flow and return the token response."""
    session = requests.Session()
    assert sandbox_sign_in(session, base_url, email=email).status_code == 302
    verifier, challenge = pkce_pair()
    redirect = consent(session, base_url, code_challenge=challenge, allow=True)
    assert redirect.status_code == 302, redirect.text
    response = exchange_code(
        base_url, code=location_params(redirect)["code"], code_verifier=verifier
    )
    assert response.status_code == 200, response.text
    return response.json()
