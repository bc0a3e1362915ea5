"""The demo: a tenant wired to the sandbox provider and the catalog, seeded idempotently.

Running it again keeps the data, the encryption key, the admin password and the tenant's API key
(kept in files under ``var/`` that only the owner can read), and issues a fresh session URL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Membership, Tenant
from accounts.services.audit import Actor
from accounts.services.end_users import end_user_upsert
from accounts.services.tenants import (
    tenant_api_key_authenticate,
    tenant_api_key_create,
    tenant_create,
)
from core.conf import conf
from core.validators import origin_of
from integrations.models import (
    App,
    ConnectSession,
    Credential,
    Deployment,
    Flow,
    Installation,
    TenantOAuthClient,
    Workflow,
)
from integrations.services.catalog import catalog_load
from integrations.services.connect_sessions import (
    Handoff,
    IssuedSession,
    connect_session_create,
    handoff_max_lifetime,
)
from integrations.services.credentials import NewSecret, credential_create, credential_reconnect
from integrations.services.installations import flow_version_current, installation_install
from integrations.services.oauth_clients import oauth_client_secret, oauth_client_set
from integrations.services.workflows import workflow_save
from portal.setup_files import _write_private
from sandbox.catalog import (
    SANDBOX_API_KEY,
    SANDBOX_BASIC,
    SANDBOX_OAUTH,
    sandbox_catalog_apps_ensure,
)
from sandbox.models import SandboxAccount
from sandbox.services import (
    SANDBOX_PASSWORD,
    sandbox_api_key_authenticate,
    sandbox_api_key_create,
    sandbox_application_ensure,
    sandbox_seed,
)

DEMO_TENANT_SLUG = "acme-demo"
DEMO_CLIENT_ID = "connect-portal-demo"
ADMIN_EMAIL = "admin@demo.test"
STAFF_EMAIL = "staff@acme-demo.test"
DEMO_USER_ID = "demo-user-1"
DEMO_WORKFLOW_KEY = "add-item"

# The demo's workflow: reads the sandbox account's items, then creates one from the input.
ADD_ITEM_WORKFLOW = {
    "name": "Add a sandbox item",
    "description": "Counts the account's items, then adds one titled from the input.",
    "trigger": Workflow.Trigger.REQUEST,
    "input_schema": {
        "type": "object",
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200}},
        "required": ["title"],
    },
    "steps": [
        {"name": "list", "app": SANDBOX_API_KEY, "path": "items"},
        {
            "name": "create",
            "app": SANDBOX_API_KEY,
            "method": "POST",
            "path": "items",
            "body": {"title": "{{ input.title }}"},
        },
    ],
    "response": {
        "items_before": "{{ steps.list.body | length }}",
        "created": {"id": "{{ steps.create.body.id }}", "title": "{{ steps.create.body.title }}"},
    },
}

SYNC_SETTINGS_SCHEMA = {
    "type": "object",
    "title": "Contact sync",
    "properties": {
        "direction": {
            "type": "string",
            "title": "Sync direction",
            "enum": ["import", "export", "both"],
            "default": "import",
        },
        "interval_minutes": {
            "type": "integer",
            "title": "Sync every (minutes)",
            "minimum": 5,
            "maximum": 1440,
            "default": 60,
        },
    },
    "required": ["direction"],
}


@dataclass(frozen=True)
class DemoSeed:
    tenant: Tenant
    api_key: str
    admin_email: str
    admin_password: str
    staff_email: str
    sandbox_api_key: str
    session: IssuedSession
    handoff: IssuedSession
    host_example_url: str
    workflow: Workflow
    workflow_credential: Credential


def _read_or_create(path: Path, make) -> str:
    if path.exists():
        return path.read_text().strip()
    value = make()
    _write_private(path, value + "\n")
    return value


def _user(email: str, password: str, *, superuser: bool):
    User = get_user_model()
    user = User.objects.filter(email=email).first() or User(username=email, email=email)
    user.is_staff, user.is_superuser, user.is_active = True, superuser, True
    user.set_password(password)
    user.save()
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


def _flow(tenant: Tenant, name: str, status: str, apps: list[App], **extra) -> Flow:
    flow, _ = Flow.objects.update_or_create(
        tenant=tenant, name=name, defaults={"status": status, **extra}
    )
    flow.apps.set(apps)
    return flow


@transaction.atomic
def demo_seed(*, base_url: str, var_dir: Path) -> DemoSeed:
    catalog_load()
    sandbox_accounts = sandbox_seed()
    sandbox_apps = sandbox_catalog_apps_ensure(base_url=base_url)
    catalog = {app.slug: app for app in App.objects.filter(tenant__isnull=True)}

    host_origin = origin_of(base_url.replace("127.0.0.1", "localhost", 1)) or ""
    tenant = Tenant.objects.filter(slug=DEMO_TENANT_SLUG).first()
    if tenant is None:
        tenant = tenant_create(name="Acme Demo", slug=DEMO_TENANT_SLUG)
    tenant.allowed_origins = sorted({origin_of(base_url), host_origin} - {None, ""})
    own_app, _ = App.objects.update_or_create(
        tenant=tenant,
        slug="acme-crm",
        defaults={
            "name": "Acme CRM",
            "description": "The tenant's own product: never offered in its own modal.",
            "auth_type": App.AuthType.API_KEY,
            "fields": [{"name": "api_key", "label": "Acme API key", "secret": True}],
            "auth_scheme": {
                "in": "header",
                "name": "Authorization",
                "template": "Bearer {api_key}",
            },
            "api_base_url": "https://api.acme.example",
            "verification": {"path": "/me", "identity": ["email"]},
        },
    )
    tenant.own_app = own_app
    tenant.default_theme = {"primary_color": "#4f46e5", "vault_name": "Acme Integrations"}
    tenant.full_clean()
    tenant.save()

    # The tenant's OAuth client at the sandbox: its secret lives in our vault and is set on
    # the sandbox's application, so both sides agree on every run.
    client = TenantOAuthClient.objects.filter(
        tenant=tenant, app=sandbox_apps[SANDBOX_OAUTH]
    ).first()
    client_secret = oauth_client_secret(client=client) if client else secrets.token_urlsafe(32)
    oauth_client_set(
        tenant=tenant,
        app=sandbox_apps[SANDBOX_OAUTH],
        client_id=DEMO_CLIENT_ID,
        client_secret=client_secret,
    )
    sandbox_application_ensure(
        client_id=DEMO_CLIENT_ID,
        client_secret=client_secret,
        redirect_uris=[base_url.rstrip("/") + "/connect/oauth/callback/"],
    )

    sync = _flow(
        tenant,
        "Sync contacts",
        Flow.Status.PUBLISHED,
        [sandbox_apps[SANDBOX_OAUTH], catalog["hubspot"], catalog["salesforce"], own_app],
        description="Keeps contacts in step between Acme and your CRM.",
        settings_schema=SYNC_SETTINGS_SCHEMA,
    )
    for key, name, default in (
        ("import-contacts", "Import new contacts", True),
        ("export-deals", "Export closed deals", False),
    ):
        Workflow.objects.update_or_create(
            flow=sync, key=key, defaults={"name": name, "enabled_by_default": default}
        )
    billing = _flow(
        tenant,
        "Billing alerts",
        Flow.Status.PUBLISHED,
        [
            sandbox_apps[SANDBOX_API_KEY],
            sandbox_apps[SANDBOX_BASIC],
            catalog["stripe"],
            catalog["slack"],
        ],
        description="Posts failed payments to your team.",
    )
    draft = _flow(tenant, "Support inbox (draft)", Flow.Status.DRAFT, [catalog["zendesk"]])
    items = _flow(
        tenant,
        "Sandbox items",
        Flow.Status.PUBLISHED,
        [sandbox_apps[SANDBOX_API_KEY]],
        description="Adds items to your sandbox account from Acme.",
    )
    workflow = Workflow.objects.filter(flow=items, key=DEMO_WORKFLOW_KEY).first() or Workflow(
        flow=items, key=DEMO_WORKFLOW_KEY
    )
    for name, value in ADD_ITEM_WORKFLOW.items():
        setattr(workflow, name, value)
    workflow_save(workflow=workflow)
    for published in (sync, billing, items):
        # Version 1 once; later runs leave the versions (and the installations on them) alone.
        flow_version_current(flow=published, actor=Actor.system())
    active, _ = Deployment.objects.update_or_create(
        tenant=tenant, name="Production", defaults={"is_active": True}
    )
    active.flows.set([sync, billing, draft, items])
    legacy, _ = Deployment.objects.update_or_create(
        tenant=tenant, name="Legacy (inactive)", defaults={"is_active": False}
    )
    legacy.flows.set(
        [_flow(tenant, "Legacy export", Flow.Status.PUBLISHED, [catalog["mailchimp"]])]
    )

    end_user = end_user_upsert(
        tenant=tenant, external_id=DEMO_USER_ID, email="ada@example.com", name="Ada Lovelace"
    )

    admin_password = _read_or_create(
        var_dir / "demo-admin-password", lambda: secrets.token_urlsafe(12)
    )
    _user(ADMIN_EMAIL, admin_password, superuser=True)
    staff = _user(STAFF_EMAIL, admin_password, superuser=False)
    Membership.objects.get_or_create(
        user=staff, tenant=tenant, defaults={"role": Membership.Role.ADMIN}
    )

    api_key_file = var_dir / "demo-api-key"
    api_key = api_key_file.read_text().strip() if api_key_file.exists() else ""
    if not api_key or tenant_api_key_authenticate(plaintext=api_key) is None:
        api_key = tenant_api_key_create(tenant=tenant, name="Demo server key").plaintext
        api_key_file.unlink(missing_ok=True)
        _write_private(api_key_file, api_key + "\n")

    alice: SandboxAccount = sandbox_accounts[0]
    sandbox_key_file = var_dir / "demo-sandbox-key"
    sandbox_key = sandbox_key_file.read_text().strip() if sandbox_key_file.exists() else ""
    new_sandbox_key = not sandbox_key or sandbox_api_key_authenticate(key=sandbox_key) is None
    if new_sandbox_key:
        sandbox_key = sandbox_api_key_create(account=alice, name="Demo key")[1]
        sandbox_key_file.unlink(missing_ok=True)
        _write_private(sandbox_key_file, sandbox_key + "\n")
    credential = _demo_credential(
        end_user, sandbox_apps[SANDBOX_API_KEY], alice, sandbox_key, new_key=new_sandbox_key
    )
    if not Installation.objects.filter(end_user=end_user, flow=items).exists():
        installation_install(
            end_user=end_user, flow=items, credential=credential, actor=Actor.system()
        )

    session = connect_session_create(
        tenant=tenant, end_user=end_user, deployment=active, source=ConnectSession.Source.DEMO
    )
    return DemoSeed(
        handoff=demo_handoff_issue(tenant=tenant, end_user=end_user, deployment=active),
        tenant=tenant,
        api_key=api_key,
        admin_email=ADMIN_EMAIL,
        admin_password=admin_password,
        staff_email=STAFF_EMAIL,
        sandbox_api_key=sandbox_key,
        session=session,
        host_example_url=base_url.replace("127.0.0.1", "localhost", 1).rstrip("/")
        + "/sandbox/host-example/",
        workflow=workflow,
        workflow_credential=credential,
    )


def demo_handoff_issue(*, tenant: Tenant, end_user, deployment) -> IssuedSession:
    """A single-use hand-off link for the demo user, as a tenant would send it to the person
    who holds the credentials (open it in another browser or a private window)."""
    return connect_session_create(
        tenant=tenant,
        end_user=end_user,
        deployment=deployment,
        lifetime=handoff_max_lifetime(tenant=tenant),
        handoff=Handoff(recipient_name="Grace (Acme's IT admin)", single_use=True),
    )


def _demo_credential(
    end_user, app: App, account: SandboxAccount, key: str, *, new_key: bool
) -> Credential:
    """The demo user's sandbox API-key account (Alice's demo key), kept current on re-runs.

    The key was issued by the sandbox a moment ago, so it is known good: no provider call.
    """
    new = NewSecret(secret={"api_key": key})
    credential = Credential.objects.filter(
        end_user=end_user, app=app, identity=account.email
    ).first()
    if credential is None:
        return credential_create(
            end_user=end_user,
            app=app,
            new=new,
            identity=account.email,
            label="Alice's sandbox",
            actor=Actor.system(),
        )
    if credential.status == Credential.Status.ACTIVE and not new_key:
        return credential
    return credential_reconnect(
        credential=credential, new=new, identity=account.email, actor=Actor.system()
    )


def demo_summary(seed: DemoSeed) -> str:
    return "\n".join(
        [
            "",
            "Connect portal demo",
            "===================",
            f"Start page:      {conf.BASE_URL}/  (links to everything below)",
            f"Admin:           {conf.BASE_URL}/admin/",
            f"  superuser      {seed.admin_email} / {seed.admin_password}",
            f"  tenant staff   {seed.staff_email} / {seed.admin_password}",
            f"Tenant API key:  {seed.api_key}",
            f"Session URL:     {seed.session.url}",
            f"  (until {seed.session.session.expires_at:%H:%M} UTC; run the demo again for more)",
            f"Hand-off link:   {seed.handoff.url}",
            "  (single use, 7 days: what you would send the person who holds the credentials)",
            f"Sandbox sign-in: alice@sandbox.test / {SANDBOX_PASSWORD} (also bob@, carol@)",
            f"Sandbox API key: {seed.sandbox_api_key}",
            f"Host example:    {seed.host_example_url}",
            "  (the tenant's product on another origin, embedding the modal through the SDK)",
            "Run the demo workflow (then see it in the admin under Workflow runs):",
            f"  {demo_workflow_curl(seed)}",
            "",
        ]
    )


def demo_workflow_curl(seed: DemoSeed) -> str:
    return (
        f"curl -X POST {conf.BASE_URL}/api/v1/workflows/{seed.workflow.public_id}/run "
        f'-H "Authorization: Bearer {seed.api_key}" '
        f'-H "X-Portal-Credential: {seed.workflow_credential.pk}" '
        """-H "Content-Type: application/json" -d '{"input": {"title": "Hello from curl"}}'"""
    )
