"""Clickjacking, open redirects and reflected input."""

import pytest

from accounts.services.tenants import tenant_create
from integrations.services.connect_sessions import connect_session_create
from tests import factories
from tests.policy import csp_directives


@pytest.fixture
def session_url(db):
    tenant = tenant_create(
        name="Acme", allowed_origins=["https://app.acme.test", "http://localhost:3000"]
    )
    end_user = factories.make_end_user(tenant=tenant)
    issued = connect_session_create(tenant=tenant, end_user=end_user)
    return issued.url.split("testserver", 1)[1]


def test_the_modal_may_be_framed_only_by_the_tenants_allowed_origins(client, session_url):
    response = client.get(session_url)
    assert response.status_code == 200
    policy = csp_directives(response["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'self'", "http://localhost:3000", "https://app.acme.test"]
    assert "X-Frame-Options" not in response


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/accounts/login/", "/sandbox/", "/sandbox/login/", "/api/v1/docs", "/embed/start"],
)
def test_every_other_page_refuses_to_be_framed_and_runs_only_our_own_scripts(client, db, path):
    response = client.get(path)
    policy = csp_directives(response["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert response.get("X-Frame-Options") in ("DENY", None) or response.status_code >= 300


def test_the_session_error_page_refuses_to_be_framed_and_reflects_nothing(client, db):
    response = client.get("/connect/%3Cscript%3Ealert(1)%3C%2Fscript%3E/")
    assert response.status_code == 404
    assert csp_directives(response["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]
    assert b"<script>alert(1)" not in response.content


def test_the_sandbox_login_does_not_redirect_off_site(client, db):
    from sandbox.services import SANDBOX_PASSWORD, sandbox_seed

    sandbox_seed()
    page = client.get("/sandbox/login/?next=https://evil.test/")
    csrf = page.cookies["csrftoken"].value
    response = client.post(
        "/sandbox/login/?next=https://evil.test/",
        {
            "email": "alice@sandbox.test",
            "password": SANDBOX_PASSWORD,
            "csrfmiddlewaretoken": csrf,
            "next": "https://evil.test/",
        },
    )
    assert response.status_code == 302
    assert "evil.test" not in response["Location"]


def test_the_admin_login_does_not_redirect_off_site(client, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(
        username="s", email="s@x.test", password="pw-123456789", is_staff=True
    )
    response = client.post(
        "/accounts/login/?next=https://evil.test/",
        {"login": "s@x.test", "password": "pw-123456789"},
    )
    assert response.status_code == 302
    assert "evil.test" not in response["Location"]
