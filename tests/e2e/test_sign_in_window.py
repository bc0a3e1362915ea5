"""The sign-in window, in a real browser: a closed window is noticed and offers "Try again"
without cancelling the attempt, and "Add another account" lets a person sign in as another
sandbox account."""

from __future__ import annotations

import pytest

from integrations.models import Credential, OAuthAttempt
from sandbox.catalog import SANDBOX_OAUTH
from sandbox.services import SANDBOX_PASSWORD
from tests.e2e.browser import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALICE = "alice@sandbox.test"
BOB = "bob@sandbox.test"


def accounts(page):
    return page.locator("#accounts > li")


def sign_in_and_allow(popup, email: str) -> None:
    popup.wait_for_url("**/sandbox/login/**")
    popup.get_by_label("Email").fill(email)
    popup.get_by_label("Password").fill(SANDBOX_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    popup.get_by_role("button", name="Allow").click()


def test_closing_the_sign_in_window_offers_try_again_and_keeps_the_attempt(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    popup.wait_for_url("**/sandbox/login/**")
    page.wait_for_timeout(2600)  # a person reads the page before giving up
    popup.close()

    status = page.locator("#oauth-attempt")
    expect(status).to_contain_text("The Sandbox (OAuth2) sign-in window was closed.")
    expect(status.get_by_role("link", name="Try again")).to_be_visible()
    expect(status.get_by_role("button", name="Show the sign-in window")).to_be_hidden()
    expect(status.locator(".spinner")).to_be_hidden()
    # Not cancelled: a callback that is still on its way would be accepted.
    first = OAuthAttempt.objects.get()
    assert first.outcome == OAuthAttempt.Outcome.PENDING

    with page.expect_popup() as opened:
        status.get_by_role("link", name="Try again").click()
    sign_in_and_allow(opened.value, ALICE)

    expect(page.locator("#portal-prompt")).to_contain_text(
        f"Connected your Sandbox (OAuth2) account {ALICE}."
    )
    expect(accounts(page)).to_have_count(1)
    assert OAuthAttempt.objects.count() == 2
    first.refresh_from_db()
    assert first.outcome == OAuthAttempt.Outcome.PENDING


def test_a_new_sign_in_clears_the_previous_outcome(page, world, live_server):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    sign_in_and_allow(opened.value, ALICE)
    expect(page.locator("#portal-prompt")).to_contain_text("Connected your")

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Add another account").click()
    expect(page.locator("#portal-prompt")).to_be_empty()
    opened.value.close()


def test_adding_a_second_sandbox_account_asks_the_provider_to_sign_in_again(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    sign_in_and_allow(opened.value, ALICE)
    expect(accounts(page)).to_have_count(1)

    # Still signed in at the sandbox as Alice: prompt=login shows its sign-in page anyway.
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Add another account").click()
    popup = opened.value
    sign_in_and_allow(popup, BOB)

    expect(accounts(page)).to_have_count(2)
    expect(accounts(page).nth(1)).to_contain_text(BOB)
    identities = set(
        Credential.objects.filter(end_user=world.end_user).values_list("identity", flat=True)
    )
    assert identities == {ALICE, BOB}


def test_the_sandbox_consent_page_offers_another_account_and_comes_back_to_the_authorization(
    page, world, live_server
):
    page.goto(live_server.url + world.modal_url() + f"?app={SANDBOX_OAUTH}")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect Sandbox (OAuth2)").click()
    popup = opened.value
    popup.wait_for_url("**/sandbox/login/**")
    popup.get_by_label("Email").fill(ALICE)
    popup.get_by_label("Password").fill(SANDBOX_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_text(f"You are signed in as {ALICE}")).to_be_visible()

    popup.get_by_role("button", name="Use another account").click()
    sign_in_and_allow(popup, BOB)

    expect(accounts(page)).to_have_count(1)
    expect(accounts(page).first).to_contain_text(BOB)
