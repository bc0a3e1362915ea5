"""The demo seeds a working tenant, and running it again keeps what it made."""

import re
import stat
from io import StringIO

import requests
from django.core.management import call_command
from django.test import override_settings

from accounts.models import EndUser, Tenant, TenantApiKey
from accounts.services.tenants import tenant_api_key_authenticate
from integrations.models import App, ConnectSession, Deployment, Flow, WorkflowRun
from sandbox.demo import demo_seed, demo_workflow_curl
from sandbox.models import SandboxItem


def test_the_demo_seeds_a_tenant_whose_session_url_opens_the_modal(db, client, tmp_path):
    seed = demo_seed(base_url="http://localhost:8000", var_dir=tmp_path)
    response = client.get(seed.session.url.split("testserver", 1)[1])
    assert response.status_code == 200
    names = re.findall(
        r'class="portal-app-link" href="[^"]*/apps/([^/"]+)/', response.content.decode()
    )
    assert "sandbox-oauth" in names and "sandbox-apikey" in names
    assert "acme-crm" not in names  # the tenant's own app
    assert "zendesk" not in names  # only in a draft flow
    assert "mailchimp" not in names  # only in an inactive deployment
    assert tenant_api_key_authenticate(plaintext=seed.api_key).tenant == seed.tenant
    assert client.login(username=seed.staff_email, password=seed.admin_password)
    assert client.get("/admin/").status_code == 200


def test_running_the_demo_twice_keeps_data_and_keys_and_issues_a_fresh_session(db, tmp_path):
    first = demo_seed(base_url="http://localhost:8000", var_dir=tmp_path)
    counts = [
        model.objects.count() for model in (Tenant, App, Flow, Deployment, EndUser, TenantApiKey)
    ]
    second = demo_seed(base_url="http://localhost:8000", var_dir=tmp_path)
    assert [
        model.objects.count() for model in (Tenant, App, Flow, Deployment, EndUser, TenantApiKey)
    ] == counts
    assert second.api_key == first.api_key
    assert second.admin_password == first.admin_password
    assert second.sandbox_api_key == first.sandbox_api_key
    assert second.session.token != first.session.token
    assert second.handoff.token != first.handoff.token
    # Each run: a session and a hand-off link.
    assert ConnectSession.objects.count() == 4
    assert ConnectSession.objects.filter(source=ConnectSession.Source.HANDOFF).count() == 2


def test_the_demos_secret_files_are_readable_by_their_owner_only(db, tmp_path):
    demo_seed(base_url="http://localhost:8000", var_dir=tmp_path)
    for name in ("demo-admin-password", "demo-api-key", "demo-sandbox-key"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, name


def test_the_demo_command_prints_the_logins_and_a_session_url(db, tmp_path):
    out = StringIO()
    with override_settings(VAR_DIR=tmp_path, PORTAL_BASE_URL="http://localhost:8000"):
        call_command("demo", no_serve=True, stdout=out)
    text = out.getvalue()
    assert "admin@demo.test" in text
    assert "Tenant API key:  cp_sk_" in text
    assert "Session URL:     http://localhost:8000/connect/" in text
    assert "Hand-off link:   http://localhost:8000/connect/" in text


def test_the_dev_settings_generate_the_encryption_key_in_an_owner_only_file(tmp_path):
    from portal.setup_files import ensure_dev_keyring_file

    path = ensure_dev_keyring_file(tmp_path / "encryption.keys")
    content = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_dev_keyring_file(path).read_text() == content  # kept on the next run


def test_the_demo_workflow_runs_against_the_sandbox_with_the_readmes_curl(
    transactional_db, live_server, tmp_path
):
    """The README's one-line curl, sent to a live server: the workflow reads the sandbox
    account's items and creates one from the input, and the run is in the history."""
    with override_settings(PORTAL_BASE_URL=live_server.url):
        seed = demo_seed(base_url=live_server.url, var_dir=tmp_path)
        curl = demo_workflow_curl(seed)
    assert curl.startswith(f"curl -X POST {live_server.url}/api/v1/workflows/")

    before = SandboxItem.objects.filter(account__email="alice@sandbox.test").count()
    response = requests.post(
        f"{live_server.url}/api/v1/workflows/{seed.workflow.public_id}/run",
        headers={
            "Authorization": f"Bearer {seed.api_key}",
            "X-Portal-Credential": str(seed.workflow_credential.pk),
        },
        json={"input": {"title": "Hello from curl"}},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    item = SandboxItem.objects.get(title="Hello from curl")
    assert body == {
        "items_before": before,
        "created": {"id": str(item.pk), "title": "Hello from curl"},
    }
    run = WorkflowRun.objects.get(pk=response.headers["X-Portal-Run"])
    assert run.credentials_used.get().credential_id == seed.workflow_credential.pk
    assert run.flow_version == 1  # the demo's published flows have their first version
    again = demo_seed(base_url=live_server.url, var_dir=tmp_path)
    assert again.workflow.pk == seed.workflow.pk
    assert again.workflow_credential.pk == seed.workflow_credential.pk
