"""Hand-off links in the modal: whose accounts the person connects, opens recorded without the
token, and a single-use link spent by the first account connected through it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from integrations.models import ConnectSession, ConnectSessionOpen, Credential
from integrations.services.connect_sessions import Handoff, connect_session_create
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH
from tests.connect.helpers import path_and_query, provider_answer

pytestmark = pytest.mark.django_db(transaction=True)

FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0"


def handoff_link(world, *, single_use: bool = True) -> tuple[ConnectSession, str]:
    world.end_user.name = "Ada Lovelace"
    world.end_user.save()
    issued = connect_session_create(
        tenant=world.tenant,
        end_user=world.end_user,
        deployment=world.deployment,
        lifetime=timedelta(days=3),
        handoff=Handoff(recipient_name="Grace", single_use=single_use),
    )
    return issued.session, issued.token


def test_the_modal_says_whose_accounts_are_being_connected(client, world):
    _, token = handoff_link(world)

    body = client.get(f"/connect/{token}/").content.decode()

    assert f"You are connecting accounts for Ada Lovelace at {world.tenant.name}." in body
    assert "You are connecting accounts for" not in client.get(world.modal_url()).content.decode()


def test_the_banner_is_translated(client, world):
    _, token = handoff_link(world)

    body = client.get(f"/connect/{token}/", {"locale": "fr"}).content.decode()

    assert f"Vous connectez des comptes pour Ada Lovelace chez {world.tenant.name}." in body


def test_each_browser_open_is_recorded_coarsely_and_the_pages_own_requests_are_not(client, world):
    session, token = handoff_link(world)

    client.get(f"/connect/{token}/", HTTP_USER_AGENT=FIREFOX)
    client.get(f"/connect/{token}/apps/{SANDBOX_API_KEY}/", HTTP_USER_AGENT=FIREFOX)
    client.get(
        f"/connect/{token}/apps/{SANDBOX_API_KEY}/",
        HTTP_HX_REQUEST="true",
        HTTP_X_PORTAL_SESSION=token,
        HTTP_USER_AGENT=FIREFOX,
    )
    client.get(world.modal_url())  # an ordinary session records no opens

    opens = list(ConnectSessionOpen.objects.values_list("session_id", "client"))
    assert opens == [(session.pk, "Firefox on macOS")] * 2
    assert not any(token in client for _, client in opens)


def test_a_single_use_link_is_spent_by_the_first_account_and_then_shows_the_used_page(
    client, world
):
    session, token = handoff_link(world)
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": token}
    client.get(f"/connect/{token}/")

    response = client.post(
        f"/connect/{token}/apps/{SANDBOX_API_KEY}/accounts/", {"api_key": world.api_key()}, **hx
    )

    assert response.status_code == 200
    credential = Credential.objects.get(end_user=world.end_user)
    session.refresh_from_db()
    assert session.spent_at is not None
    # The answer offers no second account, and says why.
    body = response.content.decode()
    assert "Add another account" not in body
    assert "This link has already been used to connect an account." in body
    # The page that spent it still shows the account...
    status = client.get(f"/connect/{token}/accounts/{credential.pk}/", **hx)
    assert status.status_code == 200
    # ...but connects nothing more, not even from that page.
    again = client.post(
        f"/connect/{token}/apps/{SANDBOX_API_KEY}/accounts/",
        {"api_key": world.api_key("bob@sandbox.test")},
        **hx,
    )
    assert "This link has already been used to connect an account." in again.content.decode()
    assert Credential.objects.filter(end_user=world.end_user).count() == 1
    oauth = client.post(f"/connect/{token}/apps/{SANDBOX_OAUTH}/oauth/", **hx)
    assert "This link has already been used" in oauth.content.decode()
    # Opened again, the link says it was used and what to do.
    page = client.get(f"/connect/{token}/", HTTP_ACCEPT_LANGUAGE="de")
    assert page.status_code == 403
    assert "Dieser Link wurde bereits verwendet." in page.content.decode()


def test_a_link_that_is_not_single_use_connects_several_accounts(client, world):
    session, token = handoff_link(world, single_use=False)
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": token}

    for email in ("alice@sandbox.test", "bob@sandbox.test"):
        client.post(
            f"/connect/{token}/apps/{SANDBOX_API_KEY}/accounts/",
            {"api_key": world.api_key(email)},
            **hx,
        )

    assert Credential.objects.filter(end_user=world.end_user).count() == 2
    session.refresh_from_db()
    assert session.spent_at is None
    assert client.get(f"/connect/{token}/").status_code == 200


def start_sign_in(client, token: str) -> str:
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": token}
    response = client.post(f"/connect/{token}/apps/{SANDBOX_OAUTH}/oauth/", **hx)
    return json.loads(response["HX-Trigger"])["portal-oauth-open"]["url"]


def test_a_sign_in_spends_a_single_use_link_and_a_second_one_started_before_is_refused(
    client, world
):
    session, token = handoff_link(world)
    first, second = start_sign_in(client, token), start_sign_in(client, token)

    done = client.get(*path_and_query(provider_answer(first, base_url=world.base_url)))
    late = client.get(
        *path_and_query(provider_answer(second, base_url=world.base_url, email="bob@sandbox.test"))
    )

    assert "You're connected" in done.content.decode()
    session.refresh_from_db()
    assert session.spent_at is not None
    assert "This link has already been used" in late.content.decode()
    assert [c.identity for c in Credential.objects.filter(end_user=world.end_user)] == [
        "alice@sandbox.test"
    ]
