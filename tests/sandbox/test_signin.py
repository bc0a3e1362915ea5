"""The sandbox's own sign-in: a signed cookie of its own, never Django's login session."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client

from sandbox.models import SandboxApiKey
from sandbox.services import sandbox_api_key_create
from sandbox.signin import COOKIE_NAME
from tests.sandbox.helpers import (
    REDIRECT_URI,
    TIMEOUT,
    authorize_params,
    pkce_pair,
    sandbox_sign_in,
)

pytestmark = pytest.mark.usefixtures("sandbox_accounts")

LOGIN = "/sandbox/login/"


def _sign_in(client: Client, *, password: str = "sandbox", next_url: str | None = None):
    data = {"email": "alice@sandbox.test", "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(LOGIN, data)


@pytest.fixture
def staff_client(client: Client) -> Client:
    staff = get_user_model().objects.create_user(
        username="admin", email="admin@example.com", password="x", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    return client


@pytest.mark.django_db
def test_sign_in_sets_the_sandbox_cookie_and_no_django_session(client):
    response = _sign_in(client)

    assert response.status_code == 302
    assert response["Location"] == "/sandbox/"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["path"] == "/sandbox/"
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert "sessionid" not in response.cookies
    home = client.get("/sandbox/")
    assert home.wsgi_request.sandbox_account.email == "alice@sandbox.test"


@pytest.mark.django_db
def test_wrong_password_shows_a_clear_error_and_signs_nobody_in(client):
    response = _sign_in(client, password="wrong")

    assert response.status_code == 200
    assert "do not match a sandbox account" in response.content.decode()
    assert COOKIE_NAME not in response.cookies


@pytest.mark.django_db
def test_sign_in_form_is_csrf_protected():
    client = Client(enforce_csrf_checks=True)

    response = client.post(LOGIN, {"email": "alice@sandbox.test", "password": "sandbox"})

    assert response.status_code == 403
    assert COOKIE_NAME not in response.cookies


@pytest.mark.django_db
def test_sign_in_form_labels_its_inputs(client):
    page = client.get(LOGIN).content.decode()

    assert '<label for="id_email">Email</label>' in page
    assert '<label for="id_password">Password</label>' in page


@pytest.mark.django_db
def test_next_inside_the_sandbox_is_followed(client):
    response = _sign_in(client, next_url="/sandbox/keys/?tab=1")

    assert response["Location"] == "/sandbox/keys/?tab=1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/sandbox/",
        "/\\evil.example/sandbox/",
        "\\\\evil.example",
        "http:/evil.example",
        "/admin/",
        "/sandbox/../admin/",
        "/sandbox/%2e%2e/admin/",
        "javascript:alert(1)",
    ],
)
def test_next_outside_the_sandbox_is_refused(client, next_url):
    response = _sign_in(client, next_url=next_url)

    assert response.status_code == 302
    assert response["Location"] == "/sandbox/"


@pytest.mark.django_db
def test_a_tampered_cookie_signs_nobody_in(client):
    _sign_in(client)
    client.cookies[COOKIE_NAME] = client.cookies[COOKIE_NAME].value[:-2] + "xx"

    response = client.get("/sandbox/keys/")

    assert response.status_code == 302
    assert response["Location"].startswith("/sandbox/login/?next=")


@pytest.mark.django_db
def test_changing_the_password_ends_the_sandbox_sign_in(client, sandbox_accounts):
    _sign_in(client)
    user = sandbox_accounts["alice@sandbox.test"].user
    user.set_password("changed")
    user.save()

    response = client.get("/sandbox/keys/")

    assert response.status_code == 302


@pytest.mark.django_db
def test_sign_out_clears_the_sandbox_cookie(client):
    _sign_in(client)

    response = client.post("/sandbox/logout/")

    assert response.status_code == 302
    assert response.cookies[COOKIE_NAME].value == ""
    assert client.get("/sandbox/keys/").status_code == 302


@pytest.mark.django_db
def test_staff_admin_session_does_not_count_as_a_sandbox_sign_in(staff_client):
    _verifier, challenge = pkce_pair()

    authorize = staff_client.get(
        "/sandbox/o/authorize/", authorize_params(code_challenge=challenge)
    )
    keys = staff_client.get("/sandbox/keys/")

    assert authorize.status_code == 302
    assert authorize["Location"].startswith("/sandbox/login/?next=")
    assert keys.status_code == 302
    assert REDIRECT_URI not in authorize["Location"]


@pytest.mark.django_db
def test_signing_into_and_out_of_the_sandbox_keeps_the_staff_admin_session(staff_client):
    assert staff_client.get("/admin/").status_code == 200

    _sign_in(staff_client)
    staff_client.post("/sandbox/logout/")

    assert staff_client.get("/admin/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_signing_into_the_sandbox_does_not_authenticate_the_admin(live_server):
    session = requests.Session()

    signed_in = sandbox_sign_in(session, live_server.url)

    assert signed_in.status_code == 302
    assert {cookie.name for cookie in session.cookies} == {"csrftoken", COOKIE_NAME}
    assert "sessionid" not in session.cookies
    admin = session.get(f"{live_server.url}/admin/", allow_redirects=False, timeout=TIMEOUT)
    assert admin.status_code == 302
    assert "login" in admin.headers["Location"]


@pytest.mark.django_db
def test_home_page_explains_the_sandbox_and_lists_the_demo_accounts(client):
    page = client.get("/sandbox/").content.decode()

    assert "stand-in for a third-party service" in page
    for email in ("alice@sandbox.test", "bob@sandbox.test", "carol@sandbox.test"):
        assert email in page
    assert "<code>sandbox</code>" in page
    assert "/sandbox/keys/" in page


@pytest.mark.django_db
def test_keys_page_refuses_a_blank_key_name_and_creates_nothing(client):
    _sign_in(client)

    response = client.post("/sandbox/keys/", {"name": "  "})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not SandboxApiKey.objects.exists()


@pytest.mark.django_db
def test_an_account_cannot_revoke_another_accounts_key(client, sandbox_accounts):
    bobs_key, _plaintext = sandbox_api_key_create(
        account=sandbox_accounts["bob@sandbox.test"], name="bob's"
    )
    _sign_in(client)

    response = client.post(f"/sandbox/keys/{bobs_key.pk}/revoke/")

    assert response.status_code == 404
    bobs_key.refresh_from_db()
    assert bobs_key.revoked_at is None
