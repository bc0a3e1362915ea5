"""A breaking flow update in a real browser: the modal shows the installation as needing the
user's attention, and filling the new required setting moves it to the new version."""

from __future__ import annotations

import pytest

from accounts.services.audit import Actor
from integrations.models import Credential, Installation
from integrations.services.installations import flow_publish
from sandbox.catalog import SANDBOX_API_KEY
from tests import factories
from tests.e2e.browser import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_breaking_update_needs_attention_in_the_modal_until_the_setting_is_filled(
    page, world, live_server
):
    flow = factories.make_flow(
        tenant=world.tenant,
        apps=[world.apps[SANDBOX_API_KEY]],
        name="Item sync",
        settings_schema={"type": "object", "properties": {}},
    )
    world.deployment.flows.add(flow)
    flow_publish(flow=flow, actor=Actor.system())
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_API_KEY}")
    page.get_by_role("textbox", name="API key", exact=True).fill(world.api_key())
    page.get_by_role("button", name="Connect", exact=True).click()
    accounts = page.locator("#accounts > li")
    expect(accounts.first.locator(".badge")).to_have_text("Connected")
    accounts.first.get_by_role("link", name="Manage").click()
    card = page.locator(f"#flow-{flow.pk}")
    card.get_by_role("switch").click()
    expect(card.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    installation = Installation.objects.get(flow=flow)
    assert installation.flow_version.number == 1

    flow.settings_schema = {
        "type": "object",
        "properties": {"region": {"type": "string", "title": "Data region"}},
        "required": ["region"],
    }
    flow.save()
    flow_publish(flow=flow, actor=Actor.system())
    credential = Credential.objects.get()
    page.goto(live_server.url + world.modal_url(f"accounts/{credential.pk}/"))

    card = page.locator(f"#flow-{flow.pk}")
    attention = card.locator("[data-needs-attention]")
    expect(attention).to_contain_text("Needs your attention")
    expect(attention).to_contain_text("Data region")
    card.get_by_label("Data region").fill("eu")
    card.get_by_role("button", name="Save settings").click()
    expect(card.locator("[data-needs-attention]")).to_have_count(0)
    expect(card).to_contain_text("Settings saved.")

    installation.refresh_from_db()
    assert installation.flow_version.number == 2
    assert installation.pending_version is None
    assert installation.settings == {"region": "eu"}
    assert installation.credential_links.get().credential_id == credential.pk
