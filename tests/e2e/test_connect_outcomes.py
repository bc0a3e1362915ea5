"""A connection attempt is not a credential, seen in a real browser (Debian's chromium through
Playwright, against live_server and the sandbox provider): a key the provider refuses keeps the
person in the form and leaves nothing behind; signing in again as an account already connected
updates that account; a denied consent connects nothing."""

from __future__ import annotations

import json
import re

import pytest

from integrations.models import Credential, Event, OAuthAttempt
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH
from sandbox.services import SANDBOX_PASSWORD
from tests.e2e.browser import ARTIFACTS, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Matches the app's pattern (so the form lets it through) but no sandbox account holds it.
WRONG_KEY = "sbx_" + "0" * 24
ALICE = "alice@sandbox.test"


def accounts(page):
    return page.locator("#accounts > li")


def listen_for_portal_events(page) -> list[dict]:
    """The events the modal hands to the embedding page (in each answer's HX-Trigger header),
    collected in the order they arrive."""
    heard: list[dict] = []

    def on_response(response) -> None:
        trigger = response.headers.get("hx-trigger")
        if trigger:
            heard.extend(json.loads(trigger).get("portal-events", {}).get("events", []))

    page.on("response", on_response)
    return heard


def credential_events():
    return Event.objects.filter(type__startswith="credential.").order_by("created_at")


def sign_in_at_sandbox(popup, email: str, *, allow: bool = True) -> None:
    """In the sign-in window: the sandbox's own sign-in (when asked), then Allow or Deny."""
    popup.wait_for_url("**/sandbox/**")
    popup.wait_for_load_state()
    if "/sandbox/login/" in popup.url:
        popup.get_by_label("Email").fill(email)
        popup.get_by_label("Password").fill(SANDBOX_PASSWORD)
        popup.get_by_role("button", name="Sign in").click()
    popup.get_by_role("button", name="Allow" if allow else "Deny").click()


def wait_until_closed(popup) -> None:
    """The callback page closes itself, and the modal closes it once it has the outcome; either
    may already have happened (the sync API only hears "close" while it waits, so no race)."""
    if not popup.is_closed():
        popup.wait_for_event("close")


def test_a_wrong_api_key_stays_in_the_form_with_the_providers_reason_and_no_account_appears(
    page, world, live_server
):
    app = world.apps[SANDBOX_API_KEY]
    heard = listen_for_portal_events(page)
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_API_KEY}")
    expect(page.get_by_role("heading", name="Sandbox (API key)", level=1)).to_be_visible()
    key_input = page.get_by_role("textbox", name="API key", exact=True)
    label_input = page.get_by_label("Name this account (optional)")

    label_input.fill("Work")
    key_input.fill(WRONG_KEY)
    with page.expect_response(
        lambda r: r.request.method == "POST" and f"/apps/{SANDBOX_API_KEY}/" in r.url
    ) as answer:
        page.get_by_role("button", name="Connect", exact=True).click()
    assert answer.value.status == 422

    # Still the form, not an account: the provider's reason sits under the key field.
    expect(page.get_by_role("heading", name="Connect Sandbox (API key)")).to_be_visible()
    key_field = page.locator(".portal-field", has=key_input)
    expect(key_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(key_field.locator(".errorlist")).to_contain_text(
        "Sandbox (API key) refused the credential: The API key is unknown."
    )
    expect(key_field.locator(".errorlist")).to_contain_text("Nothing was connected")
    expect(page.locator(".portal-field", has=label_input).locator(".errorlist")).to_have_count(0)
    expect(key_input).to_be_focused()
    expect(label_input).to_have_value("Work")
    expect(key_input).to_have_value("")  # a secret is never sent back to the page
    assert WRONG_KEY not in page.content()
    expect(page.get_by_role("button", name="Connect", exact=True)).to_be_enabled()
    expect(page.locator("#portal-prompt")).not_to_contain_text("Connected")
    expect(accounts(page)).to_have_count(0)
    expect(page.locator("#accounts")).to_have_count(0)

    assert not Credential.objects.filter(end_user=world.end_user, app=app).exists()
    assert not Credential.objects.exists()
    assert list(credential_events().values_list("type", flat=True)) == []
    # The embedding page hears of the failure, and of no account.
    assert [event["event"] for event in heard] == ["did-fail-authorization-verification"]
    assert heard[0]["data"]["authorizationId"] is None
    assert "The API key is unknown." in heard[0]["data"]["reason"]

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "connect-wrong-api-key.png"), full_page=True)

    key_input.fill(world.api_key(ALICE))
    page.get_by_role("button", name="Connect", exact=True).click()

    expect(page.locator("#portal-prompt")).to_contain_text("Connected Work to Sandbox (API key).")
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first).to_contain_text("Work")
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")
    credential = Credential.objects.get(end_user=world.end_user, app=app)
    assert credential.label == "Work"
    assert credential.identity == ALICE
    assert credential.status == Credential.Status.ACTIVE
    created = Event.objects.filter(type="credential.created")
    assert [event.data["credential_id"] for event in created] == [str(credential.pk)]
    assert heard[-1]["event"] == "did-add-authorization"
    assert heard[-1]["data"]["authorizationId"] == str(credential.pk)
    assert heard[-1]["data"]["alreadyExists"] is False


def test_re_adding_the_same_oauth_identity_leaves_one_account_and_one_credential_created(
    page, world, live_server
):
    app = world.apps[SANDBOX_OAUTH]
    heard = listen_for_portal_events(page)
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    sign_in_at_sandbox(popup, ALICE)
    wait_until_closed(popup)
    expect(page.locator("#portal-prompt")).to_contain_text(
        f"Connected your Sandbox (OAuth2) account {ALICE}."
    )
    expect(accounts(page)).to_have_count(1)
    first = Credential.objects.get(end_user=world.end_user, app=app)
    assert first.identity == ALICE
    seen = set(Event.objects.values_list("pk", flat=True))
    assert [event["event"] for event in heard] == ["did-add-authorization"]
    heard.clear()

    # Signed out at the provider, so the person really signs in again, as the same account.
    page.context.clear_cookies()
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Add another account").click()
    popup = opened.value
    popup.wait_for_url("**/sandbox/login/**")
    sign_in_at_sandbox(popup, ALICE)
    wait_until_closed(popup)

    expect(page.locator("#portal-prompt")).to_contain_text(
        f"Your Sandbox (OAuth2) account {ALICE} was already connected; it is now up to date."
    )
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first).to_contain_text(ALICE)
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")

    assert list(
        Credential.objects.filter(end_user=world.end_user, app=app).values_list("pk", flat=True)
    ) == [first.pk]
    created = Event.objects.filter(type="credential.created")
    assert [event.data["credential_id"] for event in created] == [str(first.pk)]
    second = list(credential_events().exclude(pk__in=seen))
    assert [event.type for event in second] == ["credential.reconnected"]
    assert {event.data["credential_id"] for event in second} == {str(first.pk)}
    assert second[0].data["already_exists"] is True
    attempt = OAuthAttempt.objects.order_by("-created_at").first()
    assert attempt.outcome == OAuthAttempt.Outcome.CONNECTED
    assert attempt.credential_id == first.pk
    assert attempt.already_existed
    # The embedding page hears the same account again, not a new one.
    assert [event["event"] for event in heard] == ["did-add-authorization"]
    assert heard[0]["data"]["authorizationId"] == str(first.pk)
    assert heard[0]["data"]["alreadyExists"] is True


def test_denying_consent_in_the_sign_in_window_leaves_no_account_and_no_credential_created(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    sign_in_at_sandbox(popup, ALICE, allow=False)
    wait_until_closed(popup)

    expect(page.locator("#portal-prompt")).to_contain_text(
        "You did not allow access to your Sandbox (OAuth2) account, so nothing was connected."
    )
    expect(accounts(page)).to_have_count(0)
    expect(page.get_by_role("link", name="Connect Sandbox (OAuth2)")).to_be_visible()

    assert not Credential.objects.exists()
    events = list(credential_events())
    assert [event.type for event in events] == ["credential.authorization_failed"]
    assert events[0].data["reason"] == "access_denied"
    assert "credential_id" not in events[0].data
    attempt = OAuthAttempt.objects.get()
    assert attempt.outcome == OAuthAttempt.Outcome.FAILED
    assert attempt.credential_id is None


def test_a_wrong_key_for_another_account_keeps_the_add_form_open_and_the_first_account_alone(
    page, world, live_server
):
    app = world.apps[SANDBOX_API_KEY]
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_API_KEY}")
    page.get_by_role("textbox", name="API key", exact=True).fill(world.api_key(ALICE))
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(accounts(page)).to_have_count(1)
    first = Credential.objects.get(end_user=world.end_user, app=app)
    seen = set(Event.objects.values_list("pk", flat=True))

    page.locator("summary", has_text="Add another account").click()
    page.get_by_label("Name this account (optional)").fill("Client A")
    page.get_by_role("textbox", name="API key", exact=True).fill(WRONG_KEY)
    page.get_by_role("button", name="Connect", exact=True).click()

    adding = page.locator("details.portal-add")
    expect(adding).to_have_attribute("open", "")
    key_input = page.get_by_role("textbox", name="API key", exact=True)
    key_field = adding.locator(".portal-field", has=key_input)
    expect(key_field.locator(".errorlist")).to_contain_text("The API key is unknown.")
    expect(key_input).to_be_focused()
    expect(adding.get_by_label("Name this account (optional)")).to_have_value("Client A")
    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first.locator(".badge")).to_have_text("Connected")
    assert list(
        Credential.objects.filter(end_user=world.end_user).values_list("pk", flat=True)
    ) == [first.pk]
    assert not credential_events().exclude(pk__in=seen).exists()
