"""Embedding through the SDK, as a tenant's product does it: the demo's host example page on
one site (127.0.0.1) embeds the modal served from another (localhost), with third-party
cookies blocked, and hears the modal's events."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from integrations.models import Credential, Installation
from sandbox.catalog import SANDBOX_API_KEY
from sandbox.demo import demo_seed
from tests.e2e.browser import ARTIFACTS, COOKIE_PROBE, cookie_blocking_context

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture
def demo(live_server, settings, tmp_path):
    """The demo tenant, with the portal on localhost and the host page allowed on 127.0.0.1."""
    settings.PORTAL_BASE_URL = live_server.url
    seed = demo_seed(base_url=live_server.url, var_dir=tmp_path)
    # The demo seeds an account (and its installation) for its workflow; these walks start
    # as a user with nothing connected yet.
    Installation.objects.filter(end_user=seed.workflow_credential.end_user).delete()
    Credential.objects.filter(pk=seed.workflow_credential.pk).delete()
    host_origin = live_server.url.replace("localhost", "127.0.0.1")
    seed.tenant.allowed_origins = [live_server.url, host_origin]
    seed.tenant.save()
    return dataclasses.replace(seed, host_example_url=host_origin + "/sandbox/host-example/")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def events(page, name: str) -> list[dict]:
    """The events the host page printed, by name (each line is `name {json}`)."""
    lines = page.locator(f"#events li[data-event='{name}']").all_inner_texts()
    return [json.loads(line.split(" ", 1)[1]) for line in lines]


def open_modal(page, demo, *, hide_prompt: bool = False):
    page.goto(demo.host_example_url)
    if hide_prompt:
        page.get_by_label("userConfig.hideAppConnectionModal", exact=False).check()
    page.get_by_role("button", name="Connect accounts (user hash)").click()
    page.locator("#events li[data-event='ready']").wait_for()
    return page.frame_locator("iframe[title='Connect your accounts']")


def connect_sandbox_key(modal, key: str) -> None:
    modal.get_by_role("link", name="Sandbox (API key)").click()
    modal.get_by_role("textbox", name="API key", exact=True).fill(key)
    modal.get_by_role("button", name="Connect", exact=True).click()


def test_the_host_example_embeds_the_modal_cross_site_and_hears_ready_and_the_new_account(
    playwright, demo, live_server
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        modal = open_modal(page, demo)
        frame = next(f for f in page.frames if f.url.startswith(live_server.url + "/connect/"))
        # The frame is third-party and the browser refuses it cookies; the modal needs none.
        assert "probe=1" not in frame.evaluate(COOKIE_PROBE)

        connect_sandbox_key(modal, demo.sandbox_api_key)

        page.locator("#events li[data-event='did-add-authorization']").wait_for()
        credential = Credential.objects.get(app__slug=SANDBOX_API_KEY)
        assert events(page, "did-add-authorization") == [
            {
                "identity": "alice@sandbox.test",
                "authorizationId": str(credential.pk),
                "flowId": None,
                "alreadyExists": False,
                "app": SANDBOX_API_KEY,
            }
        ]
        assert credential.status == Credential.Status.ACTIVE
        expect(modal.locator("#portal-prompt")).to_be_visible()
        credential.refresh_from_db()
        session = credential.end_user.connect_sessions.order_by("-created_at").first()
        assert session.used_from_origin == demo.host_example_url.split("/sandbox/")[0]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "host-example-embedded.png"))

        modal.get_by_role("button", name="Close this window").click()
        expect(page.locator("iframe[title='Connect your accounts']")).to_have_count(0)
        assert events(page, "close") == [{}]
    finally:
        context.close()


def test_hide_app_connection_modal_hides_the_prompt_and_the_event_still_arrives(
    playwright, demo, live_server
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        modal = open_modal(page, demo, hide_prompt=True)
        connect_sandbox_key(modal, demo.sandbox_api_key)
        page.locator("#events li[data-event='did-add-authorization']").wait_for()
        assert events(page, "did-add-authorization")[0]["identity"] == "alice@sandbox.test"
        expect(modal.locator("#accounts > li .badge")).to_have_text("Connected")
        expect(modal.locator("#portal-prompt")).to_be_hidden()
    finally:
        context.close()


def test_a_page_on_an_origin_the_tenant_does_not_allow_cannot_frame_the_modal(
    playwright, demo, live_server
):
    demo.tenant.allowed_origins = [live_server.url]  # the host page's origin is not allowed
    demo.tenant.save()
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        page.goto(demo.host_example_url)
        expect(page.get_by_text("not on the demo tenant's allowed origins")).to_be_visible()
        with page.expect_response(lambda r: "/connect/" in r.url and r.status == 200) as answer:
            page.get_by_role("button", name="Connect accounts (session URL)").click()
        assert (
            "frame-ancestors 'self' " + live_server.url
            in answer.value.headers["content-security-policy"]
        )
        page.wait_for_timeout(1500)
        frame = page.frame_locator("iframe[title='Connect your accounts']")
        # The browser refused to render the portal in the frame: no modal, no events.
        expect(frame.get_by_role("heading", name="Connect your accounts")).to_have_count(0)
        assert page.locator("#events li").count() == 0
    finally:
        context.close()
