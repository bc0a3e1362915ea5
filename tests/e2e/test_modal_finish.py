"""The modal as a finished product, in Debian's chromium: only connectable apps, brand logos that
load, eight languages, light and dark with AA contrast (axe-core), in the page and in a
cross-site iframe with third-party cookies blocked. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from integrations.models import App
from integrations.services.catalog import CATALOG_PATH, catalog_load
from integrations.services.oauth_clients import oauth_client_set
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_BASIC, SANDBOX_OAUTH
from tests import factories
from tests.connect.helpers import World, build_world
from tests.e2e.browser import ARTIFACTS, HostPage, cookie_blocking_context, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNCONFIGURED = {"hubspot", "salesforce"}
CATALOG_SLUGS = {entry["slug"] for entry in tomllib.loads(CATALOG_PATH.read_text())["apps"]}
SANDBOX_SLUGS = {SANDBOX_OAUTH, SANDBOX_API_KEY, SANDBOX_BASIC}


@pytest.fixture
def catalog_world(live_server, settings, host_server, transactional_db) -> World:
    """The sandbox world plus every catalog app in its published flow; the tenant has an OAuth
    client for every OAuth2 app but HubSpot and Salesforce."""
    settings.PORTAL_BASE_URL = live_server.url
    world = build_world(
        live_server.url, allowed_origins=[f"http://127.0.0.1:{host_server.server_port}"]
    )
    catalog_load()
    catalog = list(App.objects.filter(tenant__isnull=True, slug__in=CATALOG_SLUGS))
    world.sync.apps.add(*catalog)
    for app in catalog:
        if app.is_oauth2 and app.slug not in UNCONFIGURED:
            oauth_client_set(
                tenant=world.tenant, app=app, client_id=f"id-{app.slug}", client_secret="s"
            )
    return world


def framed(host_server, live_server, path: str) -> str:
    host_origin = f"http://127.0.0.1:{host_server.server_port}"
    src = f"{live_server.url}{path}?embed_origin={host_origin}"
    HostPage.body = (
        f'<!doctype html><html lang="en"><head><title>Host</title></head><body>'
        f'<iframe id="portal" title="Connect your accounts" src="{src}" width="1000" '
        f'height="800"></iframe></body></html>'
    ).encode()
    return host_origin + "/"


def listed_slugs_and_logo_widths(frame) -> dict[str, int]:
    frame.locator(".portal-app").first.wait_for()
    return frame.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.portal-app')].map(li => {
            const img = li.querySelector('img.portal-app-icon');
            const href = li.querySelector('a').getAttribute('href');
            const slug = href.split('/apps/')[1].split('/')[0];
            return [slug, img && img.complete ? img.naturalWidth : 0];
        }))"""
    )


def wait_for_images(frame) -> None:
    frame.wait_for_function("() => [...document.images].every(img => img.complete)", polling=100)


def test_only_connectable_apps_are_listed_and_every_catalog_logo_loads(
    page, catalog_world, live_server
):
    page.goto(live_server.url + catalog_world.modal_url())
    page.locator(".portal-app").first.wait_for()
    wait_for_images(page)
    widths = listed_slugs_and_logo_widths(page)

    assert set(widths) == (CATALOG_SLUGS - UNCONFIGURED) | SANDBOX_SLUGS
    assert not UNCONFIGURED & set(widths)
    assert "HubSpot" not in page.inner_text("body")
    # Every listed app shows an image that loaded, each a different file.
    assert all(width > 0 for width in widths.values()), widths
    sources = page.eval_on_selector_all(".portal-app-icon", "els => els.map(e => e.src)")
    assert len(set(sources)) == len(sources)


def test_in_a_cross_site_iframe_the_same_apps_and_logos(
    playwright, catalog_world, live_server, host_server
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        page.goto(framed(host_server, live_server, catalog_world.modal_url()))
        page.frame_locator("#portal").locator(".portal-app").first.wait_for()
        frame = next(f for f in page.frames if f.url.startswith(live_server.url + "/connect/"))
        wait_for_images(frame)
        widths = listed_slugs_and_logo_widths(frame)
        assert "hubspot" not in widths and "salesforce" not in widths
        assert len(widths) >= 15
        assert all(width > 0 for width in widths.values()), widths
        expect(page.frame_locator("#portal").get_by_text("Sandbox (OAuth2)")).to_be_visible()
    finally:
        context.close()


AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
# A brand colour that fails AA as it is on white (1.5:1) and would pass on black: the theme
# must darken it for light and may keep it for dark.
YELLOW = "#facc15"


def contrast_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: 'rule',
                                                   values: ['color-contrast']}});
            return result.violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.html)}));
        }"""
    )
    return result


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.documentElement).backgroundColor")


def open_app_panel_with_an_account(page, world, live_server, token: str) -> None:
    """The app panel, with a connected account and the form: most colours on one page."""
    page.goto(f"{live_server.url}/connect/{token}/apps/{SANDBOX_API_KEY}/")
    page.get_by_role("textbox", name="API key", exact=True).fill(world.api_key())
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#accounts > li .badge").first).to_have_text("Connected")


@pytest.mark.parametrize("scheme_from", ["browser", "theme"])
def test_dark_mode_by_the_browser_or_the_theme_keeps_aa_contrast(
    browser, world, live_server, scheme_from
):
    options = {"theme": {"primary_color": YELLOW}}
    if scheme_from == "theme":
        options["theme"]["color_scheme"] = "dark"
    _, token = world.new_session(**options)
    context = browser.new_context(
        viewport={"width": 1280, "height": 860},
        color_scheme="dark" if scheme_from == "browser" else "light",
        bypass_csp=True,  # axe-core is injected as an inline script
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/connect/{token}/")
        assert background(page) == "rgb(15, 23, 42)"  # the dark background
        assert contrast_violations(page) == []
        open_app_panel_with_an_account(page, world, live_server, token)
        assert contrast_violations(page) == []
    finally:
        context.close()


def test_light_mode_with_a_pale_brand_colour_keeps_aa_contrast(browser, world, live_server):
    _, token = world.new_session(theme={"primary_color": YELLOW, "color_scheme": "light"})
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, color_scheme="dark", bypass_csp=True
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/connect/{token}/")
        assert background(page) == "rgb(255, 255, 255)"  # the theme wins over the browser
        assert contrast_violations(page) == []
        open_app_panel_with_an_account(page, world, live_server, token)
        assert contrast_violations(page) == []
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "fr"])
def test_screenshots_of_the_modal_in_light_and_dark_at_360_and_1280(
    browser, world, live_server, language
):
    """Saved to test-artifacts/modal-<scheme>-<language>-<width>.png for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    factories.make_credential(
        end_user=world.end_user, app=world.apps[SANDBOX_API_KEY], identity="ada@sandbox.test"
    )
    for scheme in ("light", "dark"):
        _, token = world.new_session(theme={"color_scheme": scheme}, locale=language)
        for width in (360, 1280):
            context = browser.new_context(viewport={"width": width, "height": 900})
            try:
                page = context.new_page()
                page.goto(f"{live_server.url}/connect/{token}/")
                page.locator(".portal-app").first.wait_for()
                wait_for_images(page)
                path = ARTIFACTS / f"modal-{scheme}-{language}-{width}.png"
                page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 10_000
                assert page.evaluate("document.documentElement.lang") == language
            finally:
                context.close()


ROOT = Path(__file__).resolve().parents[2]
# The modal's sentences, and the catalog's app descriptions (integrations/locale).
ENGLISH_POS = [
    ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po",
    ROOT / "integrations" / "locale" / "fr" / "LC_MESSAGES" / "django.po",
]
PLACEHOLDERS = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]+\}")


def english_fragments() -> set[str]:
    """The English sentences of the catalog, cut at their placeholders: any of them left on a
    translated page is English left over."""
    fragments = set()
    msgids = [m for po in ENGLISH_POS for m in re.findall(r'^msgid "(.+)"$', po.read_text(), re.M)]
    for msgid in msgids:
        for part in PLACEHOLDERS.split(msgid):
            part = part.strip(" .,:;()“”?…")
            if len(part) >= 4 and re.search(r"[a-z]{3}", part):
                fragments.add(part)
    return fragments


def english_left(page, data: list[str]) -> list[str]:
    """English catalog text visible on the page, once the tenant's own data is taken out."""
    text = page.evaluate(
        "() => document.body.innerText + ' ' + document.title + ' ' + "
        "[...document.querySelectorAll('[aria-label],[placeholder]')].map(e => "
        "(e.getAttribute('aria-label') || '') + ' ' + (e.getAttribute('placeholder') || ''))"
        ".join(' ')"
    )
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return sorted(
        fragment
        for fragment in english_fragments()
        if re.search(r"(?<![\w-])" + re.escape(fragment) + r"(?![\w-])", text)
    )


def world_data(world) -> list[str]:
    data = [world.tenant.name, world.end_user.email, "ada@sandbox.test", "alice@sandbox.test"]
    for app in world.apps.values():
        # A catalog app's description is translated; a tenant's own app's is its own words.
        data += [app.name, app.description if app.tenant_id else ""]
    for flow in (world.sync, world.alerts):
        data += [flow.name, flow.description]
        data += [workflow.name for workflow in flow.workflows.all()]
    return [value for value in data if value]


def walk_the_modal(page, world, live_server, token: str) -> list[str]:
    """The app list, an app with an account (and its form), the account page: what is left."""
    data = world_data(world)
    page.goto(f"{live_server.url}/connect/{token}/")
    page.locator(".portal-app").first.wait_for()
    left = english_left(page, data)
    page.goto(f"{live_server.url}/connect/{token}/apps/{SANDBOX_API_KEY}/")
    page.locator("input[type=password], input[type=text]").first.fill(world.api_key())
    page.locator("form.portal-form button[type=submit]").click()
    page.locator("#accounts > li .badge--active").wait_for()
    left += english_left(page, data)
    page.locator("#accounts > li a.button--quiet").first.click()
    page.locator("[data-account]").wait_for()
    left += english_left(page, data)
    return sorted(set(left))


def test_the_modal_in_french_chosen_by_the_session_leaves_no_english(browser, world, live_server):
    _, token = world.new_session(locale="fr")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    try:
        page = context.new_page()
        assert walk_the_modal(page, world, live_server, token) == []
        assert page.evaluate("document.documentElement.lang") == "fr"
        expect(page.locator(".badge--active").first).to_have_text("Connecté")
    finally:
        context.close()


def test_the_modal_in_japanese_chosen_by_accept_language_leaves_no_english(
    browser, world, live_server
):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    try:
        page = context.new_page()
        assert walk_the_modal(page, world, live_server, world.token) == []
        assert page.evaluate("document.documentElement.lang") == "ja"
        expect(page.locator(".badge--active").first).to_have_text("接続済み")
    finally:
        context.close()


def test_the_session_error_page_follows_accept_language(browser, live_server, transactional_db):
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/connect/not-a-real-token/")
        expect(page.locator("h1")).to_have_text(
            "Dieser Link ist keine gültige Verbindungssitzung. Er wurde möglicherweise verändert."
        )
        assert english_left(page, []) == []
    finally:
        context.close()


def test_the_sdk_locale_option_chooses_the_language_inside_a_cross_site_iframe(
    playwright, catalog_world, live_server, host_server
):
    context = cookie_blocking_context(playwright, block=True)
    try:
        page = context.new_page()
        host_origin = f"http://127.0.0.1:{host_server.server_port}"
        src = f"{live_server.url}{catalog_world.modal_url()}?embed_origin={host_origin}&locale=nl"
        HostPage.body = (
            f'<!doctype html><html lang="en"><head><title>Host</title></head><body>'
            f'<iframe id="portal" title="Koppel" src="{src}" width="1000" height="800">'
            f"</iframe></body></html>"
        ).encode()
        page.goto(host_origin + "/")
        modal = page.frame_locator("#portal")
        expect(modal.get_by_role("heading", name="Koppel uw accounts")).to_be_visible()
        # The language rides along when the modal navigates with htmx.
        modal.get_by_role("link", name="Sandbox (API key)").click()
        expect(modal.get_by_role("link", name="Alle apps")).to_be_visible()
    finally:
        context.close()
