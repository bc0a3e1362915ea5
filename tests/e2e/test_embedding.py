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
from tests.e2e.browser import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    COOKIE_PROBE,
    cookie_blocking_context,
    key_pressed_on,
)

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

        with key_pressed_on(modal.get_by_role("button", name="Close this window"), "Enter"):
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
        # The modal never said it was ready: the SDK's stand-in is the way out.
        page.locator("[data-portal-close-fallback]").click()
        expect(page.locator("[data-portal-overlay]")).to_have_count(0)
    finally:
        context.close()


def test_what_the_sdk_itself_shows_follows_the_browsers_language(playwright, demo, live_server):
    # The page's origin is not allowed, so the modal never loads and the SDK's own stand-in
    # close button stays: everything of the SDK's on screen is then in French.
    demo.tenant.allowed_origins = [live_server.url]
    demo.tenant.save()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    try:
        page = browser.new_context(locale="fr-FR").new_page()
        page.goto(demo.host_example_url)
        page.get_by_role("button", name="Connect accounts (session URL)").click()
        expect(page.locator("iframe[title='Connectez vos comptes']")).to_have_count(1)
        dialog = page.locator("[data-portal-overlay] [role=dialog]")
        assert dialog.get_attribute("aria-label") == "Connectez vos comptes"
        close = page.get_by_role("button", name="Fermer cette fenêtre")
        close.click()
        expect(page.locator("[data-portal-overlay]")).to_have_count(0)
    finally:
        browser.close()


PAGE_STATE = """() => ({
    scrollY: window.scrollY,
    htmlOverflow: getComputedStyle(document.documentElement).overflowY,
    bodyOverflow: getComputedStyle(document.body).overflowY,
    htmlStyle: document.documentElement.getAttribute('style'),
    bodyStyle: document.body.getAttribute('style'),
    focused: document.activeElement && document.activeElement.id,
})"""

# The close buttons in the part of a document the modal owns (the host page's own Close button,
# behind the overlay, is the tenant's and not counted).
VISIBLE_CLOSE_CONTROLS = """(scope) => [...document.querySelectorAll(scope + ' button')]
  .filter(b => {
    const name = (b.getAttribute('aria-label') || b.textContent || '').toLowerCase();
    const box = b.getBoundingClientRect();
    return name.includes('close') && box.width > 0 && box.height > 0
        && getComputedStyle(b).visibility !== 'hidden';
}).length"""


# (Functions, not expressions: the host page's CSP forbids eval.)
READY_COUNT_ABOVE = (
    "(n) => document.querySelectorAll(\"#events li[data-event='ready']\").length > n"
)


def tall_host_page(page, demo, host: str) -> None:
    """The host example, made long enough to scroll, with an inline style of its own, scrolled
    down; the overlay's button keeps the focus (and the scroll position) where it is."""
    url = demo.host_example_url
    if host == "same-origin":
        url = url.replace("127.0.0.1", "localhost")
    page.goto(url)
    page.evaluate(
        """() => {
            const filler = document.createElement('section');  // (CSSOM: the CSP allows it)
            filler.style.height = '3000px';
            document.querySelector('main').appendChild(filler);
            document.body.style.setProperty('color', 'rgb(1, 2, 3)');
            window.scrollTo(0, 600);
        }"""
    )


def visible_close_controls(page, modal_frame) -> int:
    """In the overlay or the inline container of the host page, and in the modal."""
    around = page.evaluate(VISIBLE_CLOSE_CONTROLS, "[data-portal-overlay], #inline-frame")
    return around + modal_frame.evaluate(VISIBLE_CLOSE_CONTROLS, "body")


def modal_frame_of(page, live_server):
    return next(f for f in page.frames if f.url.startswith(live_server.url + "/connect/"))


@pytest.mark.parametrize("host", ["cross-site", "same-origin"])
def test_the_overlay_holds_the_page_still_and_gives_it_back_exactly_on_close(
    playwright, demo, live_server, host
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        tall_host_page(page, demo, host)
        before = page.evaluate(PAGE_STATE)
        assert before["scrollY"] == 600 and before["htmlOverflow"] == "visible"

        page.evaluate("document.getElementById('open-hash').focus({preventScroll: true})")
        page.keyboard.press("Enter")
        page.locator("#events li[data-event='ready']").wait_for()
        modal = page.frame_locator("iframe[title='Connect your accounts']")
        expect(modal.get_by_role("button", name="Close this window")).to_be_visible()
        frame = modal_frame_of(page, live_server)
        if host == "cross-site":
            assert "probe=1" not in frame.evaluate(COOKIE_PROBE)

        held = page.evaluate(PAGE_STATE)
        assert held["htmlOverflow"] == "hidden" and held["bodyOverflow"] == "hidden"
        # Wheel over the backdrop and over the modal, keys in the modal and in the page.
        page.mouse.move(8, 400)
        page.mouse.wheel(0, 1500)
        page.mouse.move(500, 400)
        page.mouse.wheel(0, 1500)
        for key in ("PageDown", "End", "Space", "ArrowDown"):
            modal.locator("#view").press(key)
        page.evaluate("document.activeElement.blur()")
        for key in ("PageDown", "End", "Space", "ArrowDown"):
            page.keyboard.press(key)
        page.wait_for_timeout(300)  # any scrolling would have started by now
        assert page.evaluate("window.scrollY") == 600

        # One close control: the modal's own; the SDK's stand-in went away when it was ready.
        assert visible_close_controls(page, frame) == 1
        expect(page.locator("[data-portal-close-fallback]")).to_be_hidden()

        with key_pressed_on(modal.locator("#view"), "Escape"):
            expect(page.locator("[data-portal-overlay]")).to_have_count(0)
        assert page.evaluate(PAGE_STATE) == before | {"focused": "open-hash"}
        assert events(page, "close") == [{}]
        page.mouse.wheel(0, 300)
        page.wait_for_function("() => window.scrollY > 600")  # the page scrolls again

        # Escape in the page and the SDK's close() close it too, and give the page back.
        page.evaluate("window.scrollTo(0, 600)")
        before = page.evaluate(PAGE_STATE)
        for close_by in ("escape", "close()"):
            ready = len(events(page, "ready"))
            page.get_by_role("button", name="Connect accounts (user hash)").dispatch_event("click")
            page.wait_for_function(READY_COUNT_ABOVE, arg=ready)
            expect(page.locator("[data-portal-overlay]")).to_have_count(1)
            assert page.evaluate(PAGE_STATE)["htmlOverflow"] == "hidden"
            if close_by == "escape":
                page.evaluate("document.activeElement.blur()")
                page.keyboard.press("Escape")
            else:
                page.locator("#close").dispatch_event("click")  # calls sdk.close()
            expect(page.locator("[data-portal-overlay]")).to_have_count(0)
            state = page.evaluate(PAGE_STATE)
            assert state | {"focused": None} == before | {"focused": None}
        assert len(events(page, "close")) == 3
    finally:
        context.close()


def test_inline_the_modal_has_no_close_button_unless_the_page_asks_and_the_page_scrolls(
    playwright, demo, live_server
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        tall_host_page(page, demo, "cross-site")
        page.get_by_role("button", name="Show inline").click()
        page.locator("#events li[data-event='ready']").wait_for()
        modal = page.frame_locator("#inline-frame iframe")
        expect(modal.get_by_role("heading", name="Connect your accounts")).to_be_visible()
        frame = modal_frame_of(page, live_server)
        assert visible_close_controls(page, frame) == 0
        expect(modal.get_by_role("button", name="Close this window")).to_be_hidden()
        # Escape inside an inline modal does not take it off the page.
        modal.locator("#view").press("Escape")
        page.wait_for_timeout(300)
        expect(page.locator("#inline-frame iframe")).to_have_count(1)
        assert events(page, "close") == []
        # Nothing is held: the page scrolls as usual.
        assert page.evaluate(PAGE_STATE)["htmlOverflow"] == "visible"
        start = page.evaluate("window.scrollY")
        page.mouse.move(500, 60)
        page.mouse.wheel(0, 400)
        page.wait_for_function("(start) => window.scrollY > start", arg=start)

        # The page asks for a close button: the modal draws exactly one, and it closes.
        page.get_by_label("closeButton", exact=False).check()
        page.get_by_role("button", name="Show inline").click()
        page.wait_for_function(READY_COUNT_ABOVE, arg=1)
        modal = page.frame_locator("#inline-frame iframe")
        expect(modal.get_by_role("button", name="Close this window")).to_be_visible()
        assert visible_close_controls(page, modal_frame_of(page, live_server)) == 1
        with key_pressed_on(modal.get_by_role("button", name="Close this window"), "Enter"):
            expect(page.locator("#inline-frame iframe")).to_have_count(0)
        assert events(page, "close") == [{}]
    finally:
        context.close()


def test_the_modal_opened_as_a_page_of_its_own_shows_no_close_button(playwright, demo, live_server):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        page.goto(demo.session.url)
        expect(page.get_by_role("heading", name="Connect your accounts")).to_be_visible()
        assert page.evaluate(VISIBLE_CLOSE_CONTROLS, "body") == 0
    finally:
        context.close()
