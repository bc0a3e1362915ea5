"""The sign-in window's server side: "Add another account" asks the provider to let the person
choose or sign in again, the popup's size comes from the app, and the sandbox's sign-out goes
back to the authorization it left."""

from __future__ import annotations

import json

import pytest
import requests

from integrations.models import OAuthAttempt
from sandbox.catalog import SANDBOX_OAUTH
from tests.connect.helpers import path_and_query, provider_answer
from tests.sandbox.helpers import TIMEOUT, form_fields, sandbox_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, world, hx) -> str:
    response = client.post(world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), **hx)
    assert response.status_code == 200, response.content.decode()
    return json.loads(response["HX-Trigger"])["portal-oauth-open"]["url"]


def finish(client, callback_url: str) -> None:
    """The provider sends the popup back to the callback: the account is connected."""
    path, query = path_and_query(callback_url)
    assert client.get(path, query).status_code == 200


def test_the_first_account_is_asked_for_plainly_and_another_one_with_the_apps_prompt(
    client, world, hx
):
    first = start(client, world, hx)
    assert "prompt" not in path_and_query(first)[1]
    finish(client, provider_answer(first, base_url=world.base_url))

    another = start(client, world, hx)

    assert path_and_query(another)[1]["prompt"] == "login"
    assert world.apps[SANDBOX_OAUTH].add_account_prompt == "login"


def test_a_reconnect_does_not_ask_for_another_account(client, world, hx):
    finish(client, provider_answer(start(client, world, hx), base_url=world.base_url))
    credential = world.end_user.credentials.get()

    response = client.post(
        world.modal_url(f"apps/{SANDBOX_OAUTH}/oauth/"), {"credential": credential.pk}, **hx
    )

    url = json.loads(response["HX-Trigger"])["portal-oauth-open"]["url"]
    assert "prompt" not in path_and_query(url)[1]


def test_the_oauth_button_carries_the_apps_popup_size(client, world, hx):
    app = world.apps[SANDBOX_OAUTH]
    app.popup_width, app.popup_height = 610, 700
    app.save()

    body = client.get(world.modal_url(f"apps/{SANDBOX_OAUTH}/"), **hx).content.decode()

    assert 'data-popup-width="610"' in body and 'data-popup-height="700"' in body


def test_signing_out_on_the_consent_page_returns_to_the_same_authorization(client, world, hx):
    url = start(client, world, hx)
    browser = requests.Session()
    sandbox_sign_in(browser, world.base_url, email="alice@sandbox.test")
    consent = browser.get(url, timeout=TIMEOUT)
    assert "Use another account" in consent.text
    authorization = consent.url.removeprefix(world.base_url)

    fields = form_fields(consent.text, action="/sandbox/logout/")
    out = browser.post(
        f"{world.base_url}/sandbox/logout/", data=fields, allow_redirects=False, timeout=TIMEOUT
    )

    assert out.status_code == 302
    assert out.headers["Location"] == authorization
    back = browser.get(world.base_url + authorization, allow_redirects=False, timeout=TIMEOUT)
    assert back.status_code == 302 and "/sandbox/login/" in back.headers["Location"]
    assert OAuthAttempt.objects.get().outcome == OAuthAttempt.Outcome.PENDING
