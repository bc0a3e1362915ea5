"""The API against the built-in sandbox provider under live_server: connecting an API key,
proxying as API-key, basic and OAuth2 accounts, and refreshing an expired token first."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from oauth2_provider.models import AccessToken

from accounts.models import AuditLogEntry
from integrations.models import Credential
from integrations.services.oauth_clients import oauth_client_set
from sandbox.catalog import (
    SANDBOX_API_KEY,
    SANDBOX_BASIC,
    SANDBOX_OAUTH,
    sandbox_catalog_apps_ensure,
)
from sandbox.models import SandboxItem
from sandbox.services import sandbox_api_key_create, sandbox_application_ensure, sandbox_seed
from tests import factories
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, TIMEOUT, obtain_tokens

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(live_server, tenant):
    accounts = {account.email: account for account in sandbox_seed()}
    sandbox_application_ensure(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
    )
    apps = sandbox_catalog_apps_ensure(base_url=live_server.url)
    oauth_client_set(
        tenant=tenant, app=apps[SANDBOX_OAUTH], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    return {"accounts": accounts, "apps": apps, "url": live_server.url}


def test_connecting_a_sandbox_api_key_through_the_api_verifies_it_at_the_sandbox(
    api, end_user, sandbox
):
    _, key = sandbox_api_key_create(account=sandbox["accounts"]["alice@sandbox.test"], name="api")

    response = api.post(
        "/api/v1/credentials",
        {"user": "user-1", "app": SANDBOX_API_KEY, "fields": {"api_key": key}},
    )

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "active"
    assert response.json()["identity"] == "alice@sandbox.test"
    assert key not in response.content.decode()


def test_the_proxy_calls_the_sandbox_as_an_api_key_account_and_as_a_basic_account(
    api, end_user, sandbox
):
    bob = sandbox["accounts"]["bob@sandbox.test"]
    _, key = sandbox_api_key_create(account=bob, name="proxy")
    keyed = factories.make_credential(
        end_user=end_user, app=sandbox["apps"][SANDBOX_API_KEY], secret={"api_key": key}
    )
    basic = factories.make_credential(
        end_user=end_user,
        app=sandbox["apps"][SANDBOX_BASIC],
        secret={"email": "bob@sandbox.test", "api_key": key},
    )

    created = api.post(
        f"/api/v1/proxy/{SANDBOX_API_KEY}/items",
        {"title": "Made through the proxy"},
        headers={"X-Portal-Credential": str(keyed.pk)},
    )
    listed = api.get(
        f"/api/v1/proxy/{SANDBOX_BASIC}/items", headers={"X-Portal-Credential": str(basic.pk)}
    )

    assert created.status_code == 201, created.content
    assert SandboxItem.objects.filter(account=bob, title="Made through the proxy").exists()
    assert listed.status_code == 200
    assert "Made through the proxy" in [item["title"] for item in listed.json()]


def test_an_expired_oauth_token_is_refreshed_before_the_call_which_then_succeeds(
    api, tenant, end_user, sandbox
):
    tokens = obtain_tokens(sandbox["url"], email="carol@sandbox.test")
    checksum = hashlib.sha256(tokens["access_token"].encode()).hexdigest()
    AccessToken.objects.filter(token_checksum=checksum).update(
        expires=timezone.now() - timedelta(minutes=5)
    )
    stale = requests.get(
        f"{sandbox['url']}/sandbox/api/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert stale.status_code == 401  # the sandbox itself refuses the old token now
    credential = factories.make_credential(
        end_user=end_user,
        app=sandbox["apps"][SANDBOX_OAUTH],
        secret={"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]},
        expires_at=timezone.now() - timedelta(minutes=5),
        identity="carol@sandbox.test",
    )

    response = api.get(
        f"/api/v1/proxy/{SANDBOX_OAUTH}/me", headers={"X-Portal-Credential": str(credential.pk)}
    )

    assert response.status_code == 200, response.content
    assert response.json()["email"] == "carol@sandbox.test"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.last_refreshed_at is not None
    assert credential.expires_at > timezone.now()
    actions = list(
        AuditLogEntry.objects.filter(tenant=tenant, credential=credential)
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )
    assert actions.index("credential.refresh") < actions.index("credential.use.proxy")
    assert actions[-1] == "credential.use.proxy"


def test_a_refresh_the_provider_refuses_expires_the_credential_and_the_call_is_not_made(
    api, tenant, end_user, sandbox
):
    credential = factories.make_credential(
        end_user=end_user,
        app=sandbox["apps"][SANDBOX_OAUTH],
        secret={"access_token": "gone", "refresh_token": "not-a-refresh-token"},
        expires_at=timezone.now() - timedelta(minutes=5),
    )

    response = api.get(
        f"/api/v1/proxy/{SANDBOX_OAUTH}/me", headers={"X-Portal-Credential": str(credential.pk)}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "credential_expired"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.EXPIRED
    assert not AuditLogEntry.objects.filter(
        credential=credential, action="credential.use.proxy"
    ).exists()
