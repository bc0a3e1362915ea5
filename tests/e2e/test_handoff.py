"""A hand-off link, as the person it was sent to meets it: opened in a browser of their own,
it says whose accounts they are connecting, connects one, and a single-use link is then spent
(opening it again says so, and the API reads it as spent)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services.tenants import tenant_api_key_create
from integrations.models import ConnectSessionOpen, Credential
from tests.e2e.browser import ARTIFACTS, TIMEOUT_MS, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_single_use_handoff_link_connects_an_account_in_a_fresh_browser_and_is_then_spent(
    browser, world, live_server
):
    api = Client(
        headers={
            "Authorization": "Bearer "
            + tenant_api_key_create(tenant=world.tenant, name="e2e").plaintext
        }
    )
    created = api.post(
        "/api/v1/sessions",
        {
            "end_user": {"id": world.end_user.external_id, "name": "Ada Lovelace"},
            "deployment_id": str(world.deployment.pk),
            "session_length": "3d",
            "handoff": {"single_use": True, "recipient_name": "Grace"},
        },
        content_type="application/json",
    ).json()
    link = created["url"]

    for attempt in ("connect", "reopen"):
        # Each time a browser of its own: no cookie, no storage shared with anyone.
        context = browser.new_context(viewport={"width": 1000, "height": 820})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            page.goto(link)
            if attempt == "connect":
                expect(page.locator(".portal-handoff")).to_have_text(
                    f"You are connecting accounts for Ada Lovelace at {world.tenant.name}."
                )
                page.get_by_role("link", name="Sandbox (API key)").click()
                page.get_by_role("textbox", name="API key", exact=True).fill(world.api_key())
                page.get_by_role("button", name="Connect", exact=True).click()
                expect(page.locator("#accounts > li .badge").first).to_have_text("Connected")
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "handoff-connected.png"))
            else:
                expect(page.locator("h1")).to_have_text("This link has already been used.")
                expect(page.get_by_text("ask for a new link")).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "handoff-spent.png"))
        finally:
            context.close()

    credential = Credential.objects.get(end_user=world.end_user)
    assert credential.identity == "alice@sandbox.test"
    read = api.get(f"/api/v1/sessions/{created['id']}").json()
    assert read["status"] == "spent" and read["handoff"]["spent_at"]
    # Both opens recorded (a coarse client, never the token).
    assert len(read["opens"]) == 2
    assert all(o["client"].startswith(("Chrome", "Chromium")) for o in read["opens"])
    assert not ConnectSessionOpen.objects.filter(client__contains=created["token"]).exists()
