"""The connect modal in a real browser (Debian's chromium through Playwright), as a new user
meets it: against live_server and the sandbox provider, popups and iframes included."""

from __future__ import annotations

import pytest

from integrations.models import Credential, Installation, Workflow
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH
from tests import factories
from tests.connect.helpers import SETTINGS_SCHEMA, World, build_world
from tests.e2e.browser import (
    ARTIFACTS,
    COOKIE_PROBE,
    TIMEOUT_MS,
    HostPage,
    cookie_blocking_context,
    expect,
    key_pressed_on,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_and_allow(popup, email: str) -> None:
    """In the sign-in window: the sandbox's own sign-in (when asked), then Allow."""
    popup.wait_for_url("**/sandbox/**")
    popup.wait_for_load_state()
    if "/sandbox/login/" in popup.url:
        popup.get_by_label("Email").fill(email)
        popup.get_by_label("Password").fill("sandbox")
        popup.get_by_role("button", name="Sign in").click()
    popup.get_by_role("button", name="Allow").click()


def connect_key(page, key: str, *, name: str = "", another: bool = False) -> None:
    if another:
        page.locator("summary", has_text="Add another account").click()
    page.get_by_role("textbox", name="API key", exact=True).fill(key)
    if name:
        page.get_by_label("Name this account (optional)").fill(name)
    page.get_by_role("button", name="Connect", exact=True).click()


def accounts(page):
    return page.locator("#accounts > li")


def test_a_new_user_sees_only_the_right_apps_and_connects_api_keys(page, world, live_server):
    page.goto(live_server.url + world.modal_url())

    expect(page.get_by_role("heading", name="Connect your accounts")).to_be_visible()
    names = page.locator(".portal-app-name").all_inner_texts()
    assert names == ["Sandbox (API key)", "Sandbox (basic auth)", "Sandbox (OAuth2)"]
    assert "Draft Only" not in page.content()

    page.get_by_label("Search apps").press_sequentially("basic", delay=20)
    expect(page.locator(".portal-app-name")).to_have_count(1)
    expect(page.locator(".portal-app-name")).to_have_text("Sandbox (basic auth)")
    page.get_by_label("Search apps").fill("")
    expect(page.locator(".portal-app-name")).to_have_count(3)

    page.get_by_role("link", name="Sandbox (API key)").click()
    expect(page.get_by_role("heading", name="Sandbox (API key)", level=1)).to_be_visible()
    connect_key(page, "not-a-key")
    expect(page.locator(".errorlist")).to_contain_text("API key is not in the expected format.")
    expect(page.get_by_role("textbox", name="API key", exact=True)).to_be_focused()

    connect_key(page, world.api_key("alice@sandbox.test"), name="Work")
    expect(page.locator("#portal-prompt")).to_contain_text("Connected Work to Sandbox (API key).")
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")

    # A key the provider refuses connects nothing: the form stays open with the reason.
    page.locator("summary", has_text="Add another account").click()
    connect_key(page, "sbx_" + "0" * 24)
    key_field = page.get_by_role("textbox", name="API key", exact=True)
    expect(key_field).to_be_focused()
    expect(page.locator(".errorlist")).to_contain_text("The API key is unknown.")
    expect(accounts(page)).to_have_count(1)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "modal-app-panel.png"), full_page=True)

    connect_key(page, world.api_key("bob@sandbox.test"))
    expect(accounts(page)).to_have_count(2)
    expect(accounts(page).nth(1)).to_contain_text("bob@sandbox.test")

    connect_key(page, world.api_key("alice@sandbox.test"), another=True)
    expect(page.locator("#portal-prompt")).to_contain_text(
        "Work was already connected to Sandbox (API key); it is now up to date."
    )
    expect(accounts(page)).to_have_count(2)
    assert Credential.objects.filter(end_user=world.end_user).count() == 2

    page.get_by_role("link", name="All apps").click()
    expect(page.locator(".portal-accounts--compact li")).to_have_count(2)
    page.set_viewport_size({"width": 360, "height": 740})
    page.screenshot(path=str(ARTIFACTS / "modal-list-360px.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_oauth_accounts_connect_through_the_popup_and_the_same_identity_is_updated(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    expect(page.locator("#oauth-attempt")).to_contain_text("Finish signing in")
    sign_in_and_allow(popup, "alice@sandbox.test")
    popup.wait_for_event("close")
    expect(page.locator("#portal-prompt")).to_contain_text(
        "Connected your Sandbox (OAuth2) account alice@sandbox.test."
    )
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")

    # Another person's account: signed out at the provider, the window asks who signs in.
    page.context.clear_cookies()
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Add another account").click()
    sign_in_and_allow(opened.value, "bob@sandbox.test")
    expect(accounts(page)).to_have_count(2)
    expect(accounts(page).nth(1)).to_contain_text("bob@sandbox.test")

    page.context.clear_cookies()
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Add another account").click()
    sign_in_and_allow(opened.value, "alice@sandbox.test")
    expect(page.locator("#portal-prompt")).to_contain_text(
        "Your Sandbox (OAuth2) account alice@sandbox.test was already connected"
    )
    expect(accounts(page)).to_have_count(2)
    assert Credential.objects.filter(end_user=world.end_user).count() == 2


@pytest.fixture
def key_report(world):
    flow = factories.make_flow(
        tenant=world.tenant,
        apps=[world.apps[SANDBOX_API_KEY]],
        name="Key report",
        settings_schema=SETTINGS_SCHEMA,
    )
    Workflow.objects.create(flow=flow, key="daily", name="Daily report")
    world.deployment.flows.add(flow)
    return flow


def test_reconnecting_keeps_the_installation_settings_and_disconnecting_switches_it_off(
    page, world, live_server, key_report
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_API_KEY}")
    connect_key(page, world.api_key("alice@sandbox.test"))
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")
    credential_id = Credential.objects.get().pk

    accounts(page).first.get_by_role("link", name="Manage").click()
    flow = page.locator(f"#flow-{key_report.pk}")
    flow.get_by_role("switch").click()
    expect(flow.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    flow.locator("summary", has_text="Settings").click()
    flow.get_by_label("Sync direction").select_option("both")
    flow.get_by_label("Sync every (minutes)").fill("15")
    flow.get_by_role("button", name="Save settings").click()
    expect(flow).to_contain_text("Settings saved.")

    page.locator("summary", has_text="Enter a new key").click()
    page.get_by_role("textbox", name="API key", exact=True).fill(
        world.api_key("alice@sandbox.test")
    )
    page.get_by_role("button", name="Reconnect", exact=True).click()
    expect(page.locator("#portal-prompt")).to_contain_text(
        "Reconnected your Sandbox (API key) account"
    )
    flow = page.locator(f"#flow-{key_report.pk}")
    expect(flow.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    flow.locator("summary", has_text="Settings").click()
    expect(flow.get_by_label("Sync direction")).to_have_value("both")
    expect(flow.get_by_label("Sync every (minutes)")).to_have_value("15")
    installation = Installation.objects.get(flow=key_report)
    assert installation.settings == {"direction": "both", "interval_minutes": 15}
    assert installation.credential_links.get().credential_id == credential_id

    page.get_by_role("link", name="Disconnect…").click()
    expect(page.locator(".portal-confirm")).to_contain_text("Key report")
    page.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#portal-prompt")).to_contain_text(
        "These flows used it and are now off: Key report."
    )
    assert not Credential.objects.exists()
    installation.refresh_from_db()
    assert not installation.enabled


def test_blocked_popups_fall_back_to_a_full_page_redirect_that_comes_back(page, world, live_server):
    page.add_init_script("window.open = function () { return null; };")
    page.goto(
        live_server.url
        + world.modal_url()
        + f"?app={SANDBOX_OAUTH}&hide_prompt=1&embed_origin=https%3A%2F%2Fapp.acme.test"
    )

    page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    page.wait_for_url("**/sandbox/**")
    sign_in_and_allow(page, "carol@sandbox.test")

    page.wait_for_url("**/connect/**attempt=**")
    assert "hide_prompt=1" in page.url
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first).to_contain_text("carol@sandbox.test")
    expect(page.locator("#portal-prompt")).to_be_hidden()  # the SDK hides our prompt


HOST_PAGE = """<!doctype html><html><head><title>Acme</title></head><body>
<h1>Acme product</h1>
<iframe id="portal" title="Connect your accounts" src="{src}" width="900" height="760"></iframe>
<script>
  window.__portalEvents = [];
  window.addEventListener("message", function (event) {{
    if (event.data && event.data.source === "connect-portal") {{
      window.__portalEvents.push({{origin: event.origin, event: event.data.event,
                                  data: event.data.data}});
    }}
  }});
</script></body></html>"""


@pytest.fixture
def framed_world(live_server, settings, host_server, transactional_db) -> World:
    """The world, with the host page's origin (another site) allowed to embed the modal."""
    settings.PORTAL_BASE_URL = live_server.url
    return build_world(
        live_server.url, allowed_origins=[f"http://127.0.0.1:{host_server.server_port}"]
    )


def _host(host_server, live_server, world, **params) -> str:
    host_origin = f"http://127.0.0.1:{host_server.server_port}"
    query = "&".join(
        f"{key}={value}" for key, value in {"embed_origin": host_origin, **params}.items()
    )
    HostPage.body = HOST_PAGE.format(src=f"{live_server.url}{world.modal_url()}?{query}").encode()
    return host_origin + "/"


def test_the_cookie_probe_sees_third_party_cookies_when_the_browser_allows_them(
    playwright, live_server, host_server, framed_world
):
    context = cookie_blocking_context(playwright, block=False)
    try:
        page = context.new_page()
        page.goto(_host(host_server, live_server, framed_world))
        page.frame_locator("#portal").get_by_role(
            "heading", name="Connect your accounts"
        ).wait_for()
        frame = next(f for f in page.frames if f.url.startswith(live_server.url))
        assert "probe=1" in frame.evaluate(COOKIE_PROBE)
    finally:
        context.close()


def test_oauth_works_in_a_cross_site_iframe_with_third_party_cookies_blocked(
    playwright, live_server, host_server, framed_world
):
    world = framed_world
    host_url = _host(host_server, live_server, world, app=SANDBOX_OAUTH)
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        page.goto(live_server.url + world.modal_url())
        # First-party, the same cookie is accepted: the probe itself works on this host.
        assert "probe=1" in page.evaluate(COOKIE_PROBE)
        page.context.clear_cookies()
        page.goto(host_url)
        modal = page.frame_locator("#portal")
        expect(modal.get_by_role("heading", name="Sandbox (OAuth2)", level=1)).to_be_visible()
        frame = next(f for f in page.frames if f.url.startswith(live_server.url + "/connect/"))
        # Inside the cross-site iframe the browser refuses cookies: third-party cookies are off.
        assert "probe=1" not in frame.evaluate(COOKIE_PROBE)
        assert frame.evaluate("document.cookie") == ""

        with context.expect_page() as opened:
            modal.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
        popup = opened.value
        popup.wait_for_url("**/sandbox/**")
        assert popup.evaluate("window.opener === null")  # severed by Cross-Origin-Opener-Policy
        sign_in_and_allow(popup, "alice@sandbox.test")
        # The provider's opener policy cut the popup off from the modal, yet the callback page
        # closes itself and the modal learns the outcome by polling.
        popup.wait_for_event("close")

        expect(modal.locator("#accounts > li")).to_have_count(1)
        expect(modal.locator("#accounts > li").first.locator(".badge")).to_have_text("Connected")
        expect(modal.locator("#portal-prompt")).to_contain_text(
            "Connected your Sandbox (OAuth2) account alice@sandbox.test."
        )
        credential = Credential.objects.get(end_user=world.end_user)
        page.screenshot(path=str(ARTIFACTS / "modal-in-iframe.png"))

        expect(modal.get_by_role("button", name="Close this window")).to_be_visible()
        with key_pressed_on(modal.locator("#view"), "Escape"):
            page.wait_for_function("window.__portalEvents.some(e => e.event === 'close')")
        events = page.evaluate("window.__portalEvents")
        assert {e["origin"] for e in events} == {live_server.url}
        assert [e["event"] for e in events] == ["ready", "did-add-authorization", "close"]
        assert events[1]["data"] == {
            "identity": "alice@sandbox.test",
            "authorizationId": str(credential.pk),
            "flowId": None,
            "alreadyExists": False,
            "app": SANDBOX_OAUTH,
        }
    finally:
        context.close()


POPUP_HOST_PAGE = """<!doctype html><html><head><title>Acme</title></head><body>
<button id="open" type="button">Connect accounts</button>
<script>
  window.__portalEvents = [];
  window.addEventListener("message", function (event) {{
    if (event.data && event.data.source === "connect-portal") {{
      window.__portalEvents.push({{origin: event.origin, event: event.data.event}});
    }}
  }});
  document.getElementById("open").addEventListener("click", function () {{
    window.open("{src}", "connect-portal", "width=720,height=760");
  }});
</script></body></html>"""


def test_the_modal_opened_as_a_popup_by_the_tenants_page_posts_its_events_to_the_opener(
    browser, live_server, host_server, framed_world
):
    host_origin = f"http://127.0.0.1:{host_server.server_port}"
    src = f"{live_server.url}{framed_world.modal_url()}?embed_origin={host_origin}"
    HostPage.body = POPUP_HOST_PAGE.format(src=src).encode()
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(host_origin + "/")
        with page.expect_popup() as opened:
            page.get_by_role("button", name="Connect accounts").click()
        modal = opened.value
        expect(modal.get_by_role("heading", name="Connect your accounts")).to_be_visible()
        page.wait_for_function("window.__portalEvents.some(e => e.event === 'ready')")

        with key_pressed_on(modal.get_by_role("button", name="Close this window"), "Enter"):
            page.wait_for_function("window.__portalEvents.some(e => e.event === 'close')")
        events = page.evaluate("window.__portalEvents")
        assert [e["event"] for e in events] == ["ready", "close"]
        assert {e["origin"] for e in events} == {live_server.url}
    finally:
        context.close()


def test_the_modal_is_usable_with_the_keyboard_and_shows_where_the_focus_is(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url())

    page.keyboard.press("Tab")
    expect(page.get_by_label("Search apps")).to_be_focused()
    page.keyboard.press("Tab")
    first_app = page.get_by_role("link", name="Sandbox (API key)")
    expect(first_app).to_be_focused()
    outline = first_app.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline not in ("", "none")

    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sandbox (API key)", level=1)).to_be_visible()
    expect(page.locator("#view")).to_be_focused()  # the new view, announced by its heading
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="All apps")).to_be_focused()
    page.keyboard.press("Tab")
    api_key = page.get_by_role("textbox", name="API key", exact=True)
    expect(api_key).to_be_focused()
    page.keyboard.type(world.api_key())
    page.keyboard.press("Enter")
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")


def test_without_an_allowed_embed_origin_the_modal_posts_nothing(
    browser, live_server, host_server, framed_world
):
    src = f"{live_server.url}{framed_world.modal_url()}?embed_origin=https%3A%2F%2Fevil.example"
    HostPage.body = HOST_PAGE.format(src=src).encode()
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{host_server.server_port}/")
        modal = page.frame_locator("#portal")
        expect(modal.get_by_role("heading", name="Connect your accounts")).to_be_visible()
        modal.locator("body").press("Escape")
        page.wait_for_timeout(500)

        assert page.evaluate("window.__portalEvents") == []
    finally:
        context.close()
