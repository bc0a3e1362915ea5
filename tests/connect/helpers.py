"""Helpers for the modal's tests: a connect world on the sandbox provider, and a browser-like
walk through the sandbox's sign-in and consent pages."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests

from accounts.models import EndUser, Tenant
from integrations.models import App, ConnectSession, Deployment, Flow, Workflow
from integrations.services.connect_sessions import connect_session_create
from integrations.services.oauth_clients import oauth_client_set
from sandbox.catalog import (
    SANDBOX_API_KEY,
    SANDBOX_BASIC,
    SANDBOX_OAUTH,
    sandbox_catalog_apps_ensure,
)
from sandbox.demo import SYNC_SETTINGS_SCHEMA
from sandbox.models import SandboxAccount
from sandbox.services import (
    sandbox_api_key_create,
    sandbox_application_ensure,
    sandbox_seed,
)
from tests import factories
from tests.sandbox.helpers import TIMEOUT, form_fields, sandbox_sign_in

CLIENT_ID = "connect-portal-modal-tests"
CLIENT_SECRET = "modal-tests-client-secret"
# The demo's settings form: the tests exercise the schema a newcomer sees.
SETTINGS_SCHEMA = SYNC_SETTINGS_SCHEMA


@dataclass
class World:
    """A tenant wired to the sandbox provider, with one end user and an open session."""

    base_url: str
    tenant: Tenant
    end_user: EndUser
    apps: dict[str, App]
    deployment: Deployment
    sync: Flow
    alerts: Flow
    hidden_app: App
    accounts: dict[str, SandboxAccount]
    session: ConnectSession
    token: str

    def modal_url(self, path: str = "") -> str:
        return f"/connect/{self.token}/{path}"

    def new_session(self, **options) -> tuple[ConnectSession, str]:
        issued = connect_session_create(
            tenant=self.tenant, end_user=self.end_user, deployment=self.deployment, **options
        )
        return issued.session, issued.token

    def api_key(self, email: str = "alice@sandbox.test") -> str:
        return sandbox_api_key_create(account=self.accounts[email], name="modal test")[1]


def build_world(base_url: str, *, allowed_origins: list[str] | None = None) -> World:
    """Sandbox apps pointing at ``base_url``; the tenant's OAuth client registered on both sides
    with the callback ``{base_url}/connect/oauth/callback/`` (PORTAL_BASE_URL must be base_url)."""
    accounts = {account.email: account for account in sandbox_seed()}
    apps = sandbox_catalog_apps_ensure(base_url=base_url)
    tenant = factories.make_tenant(name="Acme", allowed_origins=allowed_origins or [])
    oauth_client_set(
        tenant=tenant, app=apps[SANDBOX_OAUTH], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    sandbox_application_ensure(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[base_url.rstrip("/") + "/connect/oauth/callback/"],
    )
    sync = factories.make_flow(
        tenant=tenant,
        apps=[apps[SANDBOX_OAUTH], apps[SANDBOX_API_KEY]],
        name="Sync contacts",
        settings_schema=SETTINGS_SCHEMA,
        description="Keeps contacts in step.",
    )
    for key, name, default in (
        ("import-contacts", "Import new contacts", True),
        ("export-deals", "Export closed deals", False),
    ):
        Workflow.objects.create(flow=sync, key=key, name=name, enabled_by_default=default)
    alerts = factories.make_flow(
        tenant=tenant, apps=[apps[SANDBOX_API_KEY], apps[SANDBOX_BASIC]], name="Billing alerts"
    )
    hidden_app = factories.make_api_key_app(slug="draft-only-app", name="Draft Only")
    draft = factories.make_flow(tenant=tenant, apps=[hidden_app], published=False)
    deployment = factories.make_deployment(tenant=tenant, flows=[sync, alerts, draft])
    end_user = factories.make_end_user(
        tenant=tenant, external_id="user-42", email="ada@example.com", name="Ada"
    )
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=deployment)
    return World(
        base_url=base_url,
        tenant=tenant,
        end_user=end_user,
        apps=apps,
        deployment=deployment,
        sync=sync,
        alerts=alerts,
        hidden_app=hidden_app,
        accounts=accounts,
        session=issued.session,
        token=issued.token,
    )


def provider_answer(
    authorization_url: str,
    *,
    base_url: str,
    email: str = "alice@sandbox.test",
    allow: bool = True,
    browser: requests.Session | None = None,
) -> str:
    """Sign in to the sandbox and press Allow (or Deny) on its consent page, like a person in
    the popup; return the URL the provider sends the browser back to (the callback)."""
    browser = browser or requests.Session()
    assert sandbox_sign_in(browser, base_url, email=email).status_code == 302
    page = browser.get(authorization_url, allow_redirects=False, timeout=TIMEOUT)
    if page.status_code == 302 and "/sandbox/login/" in page.headers["Location"]:
        # prompt=login (adding another account): sign in again, back to the authorization.
        next_url = parse_qs(urlsplit(page.headers["Location"]).query)["next"][0]
        signed_in = sandbox_sign_in(browser, base_url, email=email, next_url=next_url)
        assert signed_in.status_code == 302
        page = browser.get(
            base_url + signed_in.headers["Location"], allow_redirects=False, timeout=TIMEOUT
        )
    assert page.status_code == 200, page.text
    fields = form_fields(page.text, form_id="authorizationForm")
    if allow:
        fields["allow"] = "on"
    answer = browser.post(page.url, data=fields, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def path_and_query(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {key: values[0] for key, values in parse_qs(parts.query).items()}
