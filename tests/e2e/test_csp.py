"""The Content-Security-Policy holds on every kind of page, in a real browser (Debian's chromium
through Playwright, against live_server and the demo world): the modal and its OAuth sign-in
window through the sandbox's consent page, its error pages, the demo's start page, the admin and
its allauth sign-in, the sandbox's pages, the API docs and the host example page that embeds the
modal from another origin. Every `securitypolicyviolation` and every CSP console error is
collected; there is none, while an inline script slipped into a page is refused and heard."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from integrations.models import Credential, Installation
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH
from sandbox.demo import demo_seed
from sandbox.services import SANDBOX_PASSWORD
from tests.e2e.browser import expect
from tests.policy import csp_directives

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALICE = "alice@sandbox.test"
# Reported by every frame of every page of the context, before any of the page's own scripts.
LISTEN = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.reportCspViolation({
    page: document.location.href,
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile + ":" + event.lineNumber,
  });
});
"""


@dataclass
class CspWatch:
    """What the browser said about the policy, and which documents it applied to."""

    violations: list[dict] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)  # url -> its CSP header

    def attach(self, context) -> None:
        context.expose_binding(
            "reportCspViolation", lambda source, report: self.violations.append(report)
        )
        context.add_init_script(LISTEN)
        context.on("console", self._on_console)
        context.on("response", self._on_response)

    def _on_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def _on_response(self, response) -> None:
        if response.request.resource_type == "document" and not 300 <= response.status < 400:
            self.documents[response.url] = response.headers.get("content-security-policy", "")

    def assert_clean(self) -> None:
        assert self.violations == [], self.violations
        assert self.console == [], self.console
        for url, header in self.documents.items():
            policy = csp_directives(header)
            assert policy.get("default-src") == ["'self'"], url
            assert policy.get("object-src") == ["'none'"], url
            for directive in ("script-src", "style-src"):
                sources = policy.get(directive, [])
                assert "'unsafe-inline'" not in sources, (url, directive)
                assert "'unsafe-eval'" not in sources, (url, directive)


@pytest.fixture
def demo(live_server, settings, tmp_path):
    """The demo world; the portal on localhost and the host page on 127.0.0.1 (another site)."""
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


@pytest.fixture
def watched(browser):
    watch = CspWatch()
    context = browser.new_context(viewport={"width": 1000, "height": 820})
    context.set_default_timeout(15_000)
    watch.attach(context)
    yield watch, context.new_page()
    context.close()


def _sign_in_at_sandbox(popup) -> None:
    popup.wait_for_url("**/sandbox/**")
    popup.wait_for_load_state()
    if "/sandbox/login/" in popup.url:
        popup.get_by_label("Email").fill(ALICE)
        popup.get_by_label("Password").fill(SANDBOX_PASSWORD)
        popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_role("button", name="Allow")).to_be_visible()
    popup.get_by_role("button", name="Allow").click()


def test_the_modal_its_oauth_window_and_its_error_pages_break_no_rule(watched, demo, live_server):
    watch, page = watched
    modal = demo.session.url

    # The app list, with a search answered by htmx.
    page.goto(modal)
    expect(page.get_by_role("heading", name="Connect your accounts")).to_be_visible()
    page.get_by_label("Search apps").press_sequentially("sandbox", delay=20)
    expect(page.locator(".portal-app-name").first).to_contain_text("Sandbox")

    # The API-key form: a refused key (422 swapped in), then the right one (the account page).
    page.get_by_role("link", name="Sandbox (API key)").click()
    key = page.get_by_role("textbox", name="API key", exact=True)
    key.fill("sbx_" + "0" * 24)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator(".errorlist").first).to_be_visible()
    key.fill(demo.sandbox_api_key)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#portal-prompt")).to_contain_text("Connected")

    # OAuth2 in its own window: the sandbox's sign-in and consent pages, then our callback page.
    page.goto(modal + f"?app={SANDBOX_OAUTH}")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    _sign_in_at_sandbox(popup)
    if not popup.is_closed():
        popup.wait_for_event("close")
    expect(page.locator("#portal-prompt")).to_contain_text("Connected")
    assert Credential.objects.filter(app__slug=SANDBOX_OAUTH).exists()
    assert Credential.objects.filter(app__slug=SANDBOX_API_KEY).exists()

    # A session that does not exist, and an embed start without its parameters.
    page.goto(live_server.url + "/connect/not-a-session/")
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto(live_server.url + "/embed/start")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    watch.assert_clean()
    seen = " ".join(watch.documents)
    assert "/connect/oauth/callback/" in seen and "/sandbox/o/authorize/" in seen
    assert len(watch.documents) >= 6


def test_the_admin_its_sign_in_the_sandbox_and_the_api_docs_break_no_rule(
    watched, demo, live_server
):
    watch, page = watched
    base = live_server.url

    # The demo's start page, and the fresh session it opens.
    page.goto(base + "/")
    page.get_by_role("button", name="Open a fresh session").click()
    expect(page.get_by_role("heading", name="Connect your accounts")).to_be_visible()

    page.goto(base + "/admin/")
    page.get_by_label("Email").fill(demo.admin_email)
    page.get_by_label("Password").fill(demo.admin_password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/admin/")
    for path in (
        "/admin/integrations/credential/",  # filters, actions, search
        "/admin/integrations/credential/?status__exact=active",
        "/admin/integrations/flow/add/",  # the two-list widget of a many-to-many
        "/admin/accounts/tenant/",
        "/admin/integrations/app/add/",  # collapsed fieldsets
        "/admin/accounts/tenantapikey/add/",
        "/admin/accounts/membership/add/",  # an autocomplete (select2)
    ):
        page.goto(base + path)
        expect(page.locator("#content")).to_be_visible()
        if path == "/admin/integrations/flow/add/":
            # Drawn by the admin's own script: it ran.
            expect(page.locator(".selector-available").first).to_be_visible()
        if path == "/admin/accounts/membership/add/":
            page.locator(".select2-selection").first.click()
            expect(page.locator(".select2-results__option").first).to_be_visible()
    # A new API key is shown once, on its own page.
    page.goto(base + "/admin/accounts/tenantapikey/add/")
    page.get_by_label("Tenant").select_option(label="Acme Demo")
    page.get_by_label("Name").fill("CSP walk key")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#revealed-secret")).to_be_visible()
    page.locator("#revealed-secret").click()
    page.goto(base + "/accounts/2fa/")
    expect(page.locator("main, #content, body").first).to_be_visible()

    # The sandbox provider's own pages.
    page.goto(base + "/sandbox/login/")
    page.get_by_label("Email").fill(ALICE)
    page.get_by_label("Password").fill(SANDBOX_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(base + "/sandbox/keys/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    # The API docs: Swagger UI, rendered from local files.
    page.goto(base + "/api/v1/docs")
    # A megabyte of script to parse: on a busy machine that takes a while.
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)

    watch.assert_clean()
    assert len(watch.documents) >= 12


def test_the_host_example_embeds_the_modal_from_another_origin_breaking_no_rule(
    watched, demo, live_server
):
    watch, page = watched
    page.goto(demo.host_example_url)
    page.get_by_role("button", name="Connect accounts (user hash)").click()
    page.locator("#events li[data-event='ready']").wait_for()
    modal = page.frame_locator("iframe[title='Connect your accounts']")
    modal.get_by_role("link", name="Sandbox (API key)").click()
    expect(modal.get_by_role("textbox", name="API key", exact=True)).to_be_visible()

    watch.assert_clean()
    assert any(url.startswith(demo.host_example_url) for url in watch.documents)
    assert any("/connect/" in url for url in watch.documents)


def test_an_inline_script_slipped_into_a_page_is_refused_and_heard(watched, demo):
    watch, page = watched
    page.goto(demo.session.url)
    refused = page.evaluate(
        """() => new Promise((resolve) => {
          document.addEventListener("securitypolicyviolation",
            (event) => resolve(event.effectiveDirective), { once: true });
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.appendChild(script);
        })"""
    )
    assert refused == "script-src-elem"
    assert page.evaluate("() => window.injected === undefined")
    # The listener every page gets heard it too (messages from the page arrive in order).
    page.evaluate("() => document.title")
    assert [violation["directive"] for violation in watch.violations] == ["script-src-elem"]
