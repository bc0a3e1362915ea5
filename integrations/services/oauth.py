"""The one OAuth2 client: authorization URLs with PKCE, code exchange, refresh and revocation.

A client only: it returns values and raises errors, and writes no model (the credential's
transitions are ``credentials.py``'s). Every call has a timeout. Errors say whether they are
transient (the provider is down, slow or busy: try again, change nothing) or a clear rejection
(``invalid_grant``: the grant is gone).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.utils import timezone

from accounts.models import Tenant
from core.conf import conf
from core.http import outbound_request
from core.redact import redact
from integrations.models import App, TenantOAuthClient
from integrations.services.oauth_clients import oauth_client_secret

TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "id_token")
# Read into the token set itself; as extras they would outlive the answer they came with.
LIFETIME_FIELDS = ("expires_in", "scope")
# What a token request sends that is secret (the rest: grant type, client id, redirect URI).
SENT_SECRET_KEYS = ("code", "code_verifier", "refresh_token", "client_secret")


class OAuthError(Exception):
    """An OAuth2 call failed. ``transient`` errors are worth retrying; others are final."""

    def __init__(self, message: str, *, code: str = "", transient: bool = False):
        super().__init__(message)
        self.code = code
        self.transient = transient


class OAuthNotConfigured(OAuthError):
    pass


@dataclass(frozen=True)
class OAuthClient:
    app: App
    client_id: str
    client_secret: str
    scopes: list[str]


@dataclass
class TokenSet:
    """What a token endpoint answered; ``secret`` is what goes into the vault."""

    access_token: str
    refresh_token: str = ""
    expires_at: datetime | None = None
    scopes: list[str] = field(default_factory=list)
    secret: dict[str, Any] = field(default_factory=dict)


def oauth_client_for(*, tenant: Tenant, app: App) -> OAuthClient:
    record = TenantOAuthClient.objects.filter(tenant=tenant, app=app).first()
    if record is None or not record.has_secret:
        raise OAuthNotConfigured(
            f"{app.name} is not set up for {tenant.name} yet: its OAuth client is missing. "
            "Ask the product's support team to configure it.",
            code="oauth_client_missing",
        )
    return OAuthClient(
        app=app,
        client_id=record.client_id,
        client_secret=oauth_client_secret(client=record),
        scopes=record.scopes or list(app.scopes),
    )


def pkce_pair() -> tuple[str, str]:
    """A code verifier (RFC 7636: 43-128 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def oauth_authorization_url(
    *,
    client: OAuthClient,
    redirect_uri: str,
    state: str,
    code_challenge: str | None,
    prompt: str = "",
) -> str:
    """The provider's authorization URL; ``prompt`` (e.g. ``select_account``) replaces the
    app's own ``prompt`` parameter, if it has one."""
    app = client.app
    params: dict[str, str] = {
        **{key: str(value) for key, value in app.authorization_params.items()},
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if prompt:
        params["prompt"] = prompt
    if client.scopes:
        params["scope"] = (app.scope_separator or " ").join(client.scopes)
    if app.pkce and code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    parts = urlsplit(app.authorization_url)
    query = urlencode([*parse_qsl(parts.query), *params.items()])
    return urlunsplit(parts._replace(query=query))


def _token_request(client: OAuthClient, url: str, data: dict[str, str]) -> dict[str, Any]:
    app = client.app
    auth = None
    if app.token_auth_method == App.TokenAuthMethod.BASIC:
        auth = (client.client_id, client.client_secret)
    else:
        data = {**data, "client_id": client.client_id, "client_secret": client.client_secret}
    try:
        response = outbound_request(
            "POST",
            url,
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=conf.OUTBOUND_TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout as exc:
        raise OAuthError(f"{app.name} did not answer in time.", transient=True) from exc
    except requests.RequestException as exc:
        raise OAuthError(f"{app.name} could not be reached.", transient=True) from exc
    try:
        body = response.json()
    except ValueError:
        body = dict(parse_qsl(response.text)) if "=" in response.text else {}
    if response.status_code >= 500 or response.status_code == 429:
        raise OAuthError(
            f"{app.name} is having trouble (HTTP {response.status_code}). Try again in a moment.",
            code="provider_unavailable",
            transient=True,
        )
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code >= 400 or error:
        # The provider's words may echo what it was sent (a refresh token, the client secret).
        sent = [client.client_secret, *(data.get(key, "") for key in SENT_SECRET_KEYS)]
        code = redact(str(error or f"http_{response.status_code}"), sent)[:64]
        description = body.get("error_description") if isinstance(body, dict) else ""
        description = redact(str(description), sent)[:500] if description else ""
        raise OAuthError(
            f"{app.name} refused the request ({code}"
            + (f": {description}" if description else "")
            + ").",
            code=code,
        )
    if not isinstance(body, dict) or not body.get("access_token"):
        raise OAuthError(f"{app.name} answered without an access token.", code="invalid_response")
    return body


def _token_set(
    body: dict[str, Any], *, previous_refresh_token: str = "", requested: list[str]
) -> TokenSet:
    expires_at = None
    try:
        if body.get("expires_in") not in (None, ""):
            expires_at = timezone.now() + timedelta(seconds=int(body["expires_in"]))
    except (TypeError, ValueError):
        expires_at = None
    scope = body.get("scope")
    scopes = scope.replace(",", " ").split() if isinstance(scope, str) else list(requested)
    refresh_token = body.get("refresh_token") or previous_refresh_token
    secret = {key: body[key] for key in TOKEN_FIELDS if body.get(key)}
    if refresh_token:
        secret["refresh_token"] = refresh_token
    # Providers return values the API needs later (Salesforce's instance_url, Slack's team).
    extras = {
        key: value
        for key, value in body.items()
        if key not in TOKEN_FIELDS and key not in LIFETIME_FIELDS and isinstance(value, (str, int))
    }
    if extras:
        secret["extras"] = extras
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=refresh_token,
        expires_at=expires_at,
        scopes=scopes,
        secret=secret,
    )


def oauth_exchange_code(
    *, client: OAuthClient, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if client.app.pkce and code_verifier:
        data["code_verifier"] = code_verifier
    body = _token_request(client, client.app.token_url, data)
    return _token_set(body, requested=client.scopes)


def oauth_refresh(*, client: OAuthClient, refresh_token: str) -> TokenSet:
    body = _token_request(
        client,
        client.app.token_url,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
    )
    return _token_set(body, previous_refresh_token=refresh_token, requested=client.scopes)


def oauth_revoke(*, client: OAuthClient, token: str, token_type_hint: str = "access_token") -> bool:
    """Revoke a token at the provider, the way the app's provider does it (RFC 7009 for most;
    Slack takes the token as a Bearer header; Notion a JSON body). True when it was accepted."""
    app = client.app
    if not app.revocation_url:
        return False
    method = app.revocation_method
    if method == App.RevocationMethod.BEARER and token_type_hint != "access_token":
        return False  # only an access token can authenticate its own revocation
    headers = {"Accept": "application/json", **app.request_headers}
    auth = None
    credentials: dict[str, str] = {}
    if app.token_auth_method == App.TokenAuthMethod.BASIC:
        auth = (client.client_id, client.client_secret)
    else:
        credentials = {"client_id": client.client_id, "client_secret": client.client_secret}
    request: dict[str, Any] = {
        "headers": headers,
        "timeout": conf.OUTBOUND_TIMEOUT,
        "allow_redirects": False,
    }
    if method == App.RevocationMethod.BEARER:
        headers["Authorization"] = f"Bearer {token}"
    elif method == App.RevocationMethod.JSON:
        request.update(json={"token": token, **credentials}, auth=auth)
    else:
        request.update(
            data={"token": token, "token_type_hint": token_type_hint, **credentials}, auth=auth
        )
    try:
        response = outbound_request("POST", app.revocation_url, **request)
    except requests.RequestException:
        return False
    if not 200 <= response.status_code < 300:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    # Slack answers 200 with {"ok": false} when it refuses.
    return not (isinstance(body, dict) and body.get("ok") is False)
