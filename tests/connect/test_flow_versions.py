"""A breaking flow update in the modal: the flow says it needs the user's attention, and filling
the new required setting there moves the installation to the new version."""

from __future__ import annotations

import pytest

from accounts.services.audit import Actor
from integrations.models import Credential, Event, Installation
from integrations.services.installations import flow_publish
from sandbox.catalog import SANDBOX_API_KEY
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

BREAKING_SCHEMA = {
    "type": "object",
    "properties": {
        "direction": {"type": "string", "enum": ["import", "export"], "default": "import"},
        "region": {"type": "string", "title": "Data region", "minLength": 2},
    },
    "required": ["direction", "region"],
}


@pytest.fixture
def installed(client, world, hx):
    flow = factories.make_flow(
        tenant=world.tenant,
        apps=[world.apps[SANDBOX_API_KEY]],
        name="Item sync",
        settings_schema={
            "type": "object",
            "properties": {
                "direction": {"type": "string", "enum": ["import", "export"], "default": "import"}
            },
            "required": ["direction"],
        },
    )
    world.deployment.flows.add(flow)
    flow_publish(flow=flow, actor=Actor.system())
    client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": world.api_key("alice@sandbox.test")},
        **hx,
    )
    credential = Credential.objects.get(end_user=world.end_user, identity="alice@sandbox.test")
    client.post(
        world.modal_url(f"accounts/{credential.pk}/flows/{flow.pk}/switch/"), {"enabled": "1"}, **hx
    )
    return flow, credential, Installation.objects.get(flow=flow)


def test_the_modal_shows_needs_your_attention_and_filling_the_setting_moves_the_installation(
    client, world, hx, installed
):
    flow, credential, installation = installed
    flow.settings_schema = BREAKING_SCHEMA
    flow.save()
    flow_publish(flow=flow, actor=Actor.system())
    installation.refresh_from_db()
    assert (installation.flow_version.number, installation.pending_version.number) == (1, 2)

    page = client.get(world.modal_url(f"accounts/{credential.pk}/"), **hx)

    text = page.content.decode()
    assert "Needs your attention" in text
    assert "“Data region”" in text
    assert "data-needs-attention" in text

    saved = client.post(
        world.modal_url(f"accounts/{credential.pk}/flows/{flow.pk}/settings/"),
        {"direction": "export", "region": "eu"},
        **hx,
    )

    assert saved.status_code == 200, saved.content
    assert "Needs your attention" not in saved.content.decode()
    installation.refresh_from_db()
    assert installation.flow_version.number == 2
    assert installation.pending_version is None
    assert installation.settings == {"direction": "export", "region": "eu"}
    assert Event.objects.filter(type="installation.needs_update").count() == 1
    assert Event.objects.filter(
        type="installation.updated",
        data__flow_version=2,
        data__installation_id=str(installation.pk),
    ).exists()
