"""Managing an account in the modal: rename, reconnect in place, disconnect, and the flows that
use it (switch on or off, settings from the flow's schema, workflows)."""

from __future__ import annotations

import json

import pytest

from integrations.models import Credential, Event, Installation
from sandbox.catalog import SANDBOX_API_KEY

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(client, world, hx):
    client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": world.api_key("alice@sandbox.test")},
        **hx,
    )
    return Credential.objects.get(end_user=world.end_user, identity="alice@sandbox.test")


def account_url(world, credential, rest=""):
    return world.modal_url(f"accounts/{credential.pk}/{rest}")


def switch_on(client, world, hx, credential, flow):
    return client.post(
        account_url(world, credential, f"flows/{flow.pk}/switch/"), {"enabled": "1"}, **hx
    )


def test_the_account_page_lists_the_flows_that_use_its_app(client, world, hx, alice):
    body = client.get(account_url(world, alice)).content.decode()

    assert "Sync contacts" in body
    assert "Billing alerts" in body
    assert 'role="switch"' in body
    assert 'aria-checked="false"' in body


def test_renaming_changes_the_label_only(client, world, hx, alice):
    response = client.post(account_url(world, alice, "rename/"), {"label": "  Main   key "}, **hx)

    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.label == "Main key"
    assert alice.identity == "alice@sandbox.test"
    assert "Renamed to Main key." in response.content.decode()


def test_a_name_that_is_too_long_is_refused_next_to_the_field(client, world, hx, alice):
    response = client.post(account_url(world, alice, "rename/"), {"label": "x" * 121}, **hx)

    assert response.status_code == 422
    assert "at most 120 characters" in response.content.decode()
    alice.refresh_from_db()
    assert alice.label == ""


def test_switching_on_a_flow_that_needs_another_account_says_which_and_leaves_nothing(
    client, world, hx, alice
):
    response = switch_on(client, world, hx, alice, world.alerts)

    assert response.status_code == 422
    assert "Connect an account for Sandbox (basic auth)" in response.content.decode()
    assert not Installation.objects.exists()


@pytest.fixture
def single_app_flow(world):
    from tests import factories
    from tests.connect.helpers import SETTINGS_SCHEMA

    flow = factories.make_flow(
        tenant=world.tenant,
        apps=[world.apps[SANDBOX_API_KEY]],
        name="Key report",
        settings_schema=SETTINGS_SCHEMA,
    )
    from integrations.models import Workflow

    Workflow.objects.create(flow=flow, key="daily", name="Daily report", enabled_by_default=True)
    Workflow.objects.create(flow=flow, key="weekly", name="Weekly digest", enabled_by_default=False)
    world.deployment.flows.add(flow)
    return flow


def test_a_flow_switched_on_can_be_configured_and_its_workflows_chosen(
    client, world, hx, alice, single_app_flow
):
    on = switch_on(client, world, hx, alice, single_app_flow)
    assert on.status_code == 200
    assert 'aria-checked="true"' in on.content.decode()
    installation = Installation.objects.get(flow=single_app_flow)
    assert installation.enabled

    bad = client.post(
        account_url(world, alice, f"flows/{single_app_flow.pk}/settings/"),
        {"direction": "export", "interval_minutes": "2"},
        **hx,
    )
    assert bad.status_code == 422
    assert "Ensure this value is greater than or equal to 5." in bad.content.decode()
    installation.refresh_from_db()
    assert installation.settings == {"direction": "import", "interval_minutes": 60}

    good = client.post(
        account_url(world, alice, f"flows/{single_app_flow.pk}/settings/"),
        {"direction": "both", "interval_minutes": "15"},
        **hx,
    )
    assert good.status_code == 200
    installation.refresh_from_db()
    assert installation.settings == {"direction": "both", "interval_minutes": 15}

    workflows = client.post(
        account_url(world, alice, f"flows/{single_app_flow.pk}/workflows/"),
        {"workflows": ["weekly"]},
        **hx,
    )
    assert workflows.status_code == 200
    assert [wf.key for wf in installation.enabled_workflows.all()] == ["weekly"]

    off = client.post(
        account_url(world, alice, f"flows/{single_app_flow.pk}/switch/"), {"enabled": "0"}, **hx
    )
    assert 'aria-checked="false"' in off.content.decode()
    installation.refresh_from_db()
    assert not installation.enabled


def test_reconnect_with_a_new_key_keeps_the_id_settings_and_flows(
    client, world, hx, alice, single_app_flow
):
    switch_on(client, world, hx, alice, single_app_flow)
    client.post(
        account_url(world, alice, f"flows/{single_app_flow.pk}/settings/"),
        {"direction": "export", "interval_minutes": "30"},
        **hx,
    )
    old_cipher = bytes(alice.secret_ciphertext)

    response = client.post(
        account_url(world, alice, "reconnect/"),
        {"api_key": world.api_key("alice@sandbox.test")},
        **hx,
    )

    assert response.status_code == 200
    assert "Reconnected your Sandbox (API key) account" in response.content.decode()
    alice.refresh_from_db()
    assert bytes(alice.secret_ciphertext) != old_cipher
    assert alice.status == Credential.Status.ACTIVE
    installation = Installation.objects.get(flow=single_app_flow)
    assert installation.settings == {"direction": "export", "interval_minutes": 30}
    assert installation.enabled
    assert installation.credential_links.get().credential_id == alice.pk
    event = json.loads(response["HX-Trigger"])["portal-events"]["events"][0]
    assert event["event"] == "did-add-authorization"
    assert event["data"]["authorizationId"] == str(alice.pk)


def test_reconnect_with_another_accounts_key_is_refused_and_changes_nothing(
    client, world, hx, alice
):
    old_cipher = bytes(alice.secret_ciphertext)

    response = client.post(
        account_url(world, alice, "reconnect/"),
        {"api_key": world.api_key("bob@sandbox.test")},
        **hx,
    )

    assert response.status_code == 422
    assert "as bob@sandbox.test, but this account is alice@sandbox.test" in (
        response.content.decode()
    )
    alice.refresh_from_db()
    assert bytes(alice.secret_ciphertext) == old_cipher
    assert Credential.objects.filter(end_user=world.end_user).count() == 1


def test_disconnect_asks_first_then_removes_and_switches_off_its_flows(
    client, world, hx, alice, single_app_flow
):
    switch_on(client, world, hx, alice, single_app_flow)

    confirm = client.get(account_url(world, alice, "disconnect/"), **hx)
    assert "Disconnect alice@sandbox.test?" in confirm.content.decode()
    assert "Key report" in confirm.content.decode()
    assert Credential.objects.filter(pk=alice.pk).exists()

    done = client.post(account_url(world, alice, "disconnect/"), **hx)

    body = done.content.decode()
    assert "Disconnected alice@sandbox.test from Sandbox (API key)." in body
    assert "These flows used it and are now off: Key report." in body
    assert not Credential.objects.filter(pk=alice.pk).exists()
    installation = Installation.objects.get(flow=single_app_flow)
    assert not installation.enabled
    assert "was disconnected" in installation.disabled_reason
    assert Event.objects.filter(type="credential.deleted").count() == 1
    event = json.loads(done["HX-Trigger"])["portal-events"]["events"][0]
    assert event == {
        "event": "did-remove-authorization",
        "data": {
            "authorizationId": str(alice.pk),
            "app": SANDBOX_API_KEY,
            "identity": "alice@sandbox.test",
        },
    }


def test_another_users_account_is_not_found(client, world, hx, alice):
    from tests import factories

    stranger = factories.make_end_user(tenant=world.tenant)
    theirs = factories.make_credential(end_user=stranger, app=world.apps[SANDBOX_API_KEY])

    page = client.get(account_url(world, theirs))
    removal = client.post(account_url(world, theirs, "disconnect/"), **hx)

    assert page.status_code == 404
    assert removal.status_code == 404
    assert Credential.objects.filter(pk=theirs.pk).exists()
