"""POST/DELETE /api/v1/sessions: every rule and error of DESIGN.md's contract."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import EndUser
from accounts.services.tenants import tenant_api_key_create, tenant_api_key_revoke, tenant_create
from integrations.models import ConnectSession
from tests import factories

URL = "/api/v1/sessions"


@pytest.fixture
def setup(db):
    tenant = tenant_create(name="Acme", allowed_origins=["https://app.acme.test"])
    key = tenant_api_key_create(tenant=tenant, name="server")
    crm = factories.make_api_key_app(slug="crm")
    mail = factories.make_api_key_app(slug="mail")
    flow = factories.make_flow(tenant=tenant, apps=[crm, mail])
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    inactive = factories.make_deployment(tenant=tenant, flows=[flow], active=False)
    return {"tenant": tenant, "key": key, "deployment": deployment, "inactive": inactive}


def post(client, key, body):
    return client.post(
        URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def test_creating_a_session_answers_201_with_a_url_that_opens_the_modal(client, setup):
    response = post(
        client,
        setup["key"].plaintext,
        {
            "end_user": {"id": "u-1", "email": "ada@example.com", "name": "Ada"},
            "deployment_id": str(setup["deployment"].pk),
            "apps": ["crm"],
            "allow_multiple": False,
            "redirect_uri": "https://app.acme.test/integrations",
            "session_length": "30m",
            "theme": {"primary_color": "#112233", "vault_name": "Acme vault"},
            "consumer_metadata": {"plan": "pro"},
            "custom_settings": {"region": "eu"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "token", "url", "expires_at"}
    assert len(body["token"]) >= 43  # 256 random bits, base64url
    session = ConnectSession.objects.get(pk=body["id"])
    assert session.token_hash != body["token"] and body["token"] not in session.token_hash
    assert not session.allow_multiple and session.consumer_metadata == {"plan": "pro"}
    assert session.theme["primary_color"] == "#112233"
    assert timedelta(minutes=29) < session.expires_at - timezone.now() <= timedelta(minutes=30)
    assert EndUser.objects.get(tenant=setup["tenant"], external_id="u-1").email == "ada@example.com"
    page = client.get(body["url"].split("testserver", 1)[1])
    assert page.status_code == 200
    listed = re.findall(
        r'class="portal-app-link" href="[^"]*/apps/([^/"]+)/', page.content.decode()
    )
    assert listed == ["crm"]


def test_the_default_and_maximum_length_is_one_hour(client, setup):
    body = post(client, setup["key"].plaintext, {"end_user": {"id": "u-1"}}).json()
    session = ConnectSession.objects.get(pk=body["id"])
    assert timedelta(minutes=59) < session.expires_at - timezone.now() <= timedelta(hours=1)
    response = post(
        client, setup["key"].plaintext, {"end_user": {"id": "u-1"}, "session_length": "61m"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "session_too_long"


def test_the_end_user_is_updated_by_its_external_id(client, setup):
    post(client, setup["key"].plaintext, {"end_user": {"id": "u-1", "name": "Ada"}})
    post(client, setup["key"].plaintext, {"end_user": {"id": "u-1", "name": "Ada L."}})
    assert EndUser.objects.filter(tenant=setup["tenant"]).count() == 1
    assert EndUser.objects.get(tenant=setup["tenant"]).name == "Ada L."


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"end_user": {"id": "u"}, "deployment_id": str(uuid.uuid4())},
            404,
            "deployment_not_found",
        ),
        ({"end_user": {"id": "u"}, "apps": ["crm", "nope"]}, 422, "unknown_app"),
        ({"end_user": {"id": "u"}, "theme": {"primary_color": "blue"}}, 422, "invalid_theme"),
        (
            {"end_user": {"id": "u"}, "theme": {"logo_url": "javascript:alert(1)"}},
            422,
            "invalid_theme",
        ),
        ({"end_user": {"id": "u"}, "theme": {"favicon": "#fff"}}, 422, "validation_error"),
        ({"end_user": {"id": "u"}, "session_length": "2h"}, 422, "session_too_long"),
        ({"end_user": {"id": "u"}, "session_length": "soon"}, 422, "invalid_session_length"),
        (
            {"end_user": {"id": "u"}, "redirect_uri": "https://evil.test/x"},
            422,
            "redirect_uri_not_allowed",
        ),
        *(
            ({"end_user": {"id": "u"}, "redirect_uri": uri}, 422, "invalid_redirect_uri")
            for uri in (
                "https://app.acme.test/a b",
                "https://user:pw@app.acme.test/done",
                "https://app.acme.test@evil.test/done",
                "https://app.acme.test\\@evil.test/",
                "//app.acme.test/done",
                "/done",
                "javascript:alert(1)",
                "https://app.acme.test:99999/",
            )
        ),
        # Control characters: the schema's rule for every string (the service checks again).
        *(
            ({"end_user": {"id": "u"}, "redirect_uri": uri}, 422, "validation_error")
            for uri in ("https://app.acme.test/done\r\nSet-Cookie: a=b", "https://app.acme.test/\t")
        ),
        ({"end_user": {"id": "u", "email": "not-an-email"}}, 422, "invalid_end_user"),
        ({"end_user": {}}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_bad_input_gets_a_precise_error_and_changes_nothing(client, setup, body, status, code):
    response = post(client, setup["key"].plaintext, body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 15
    assert ConnectSession.objects.count() == 0
    assert EndUser.objects.count() == 0


def test_an_inactive_deployment_is_refused(client, setup):
    response = post(
        client,
        setup["key"].plaintext,
        {"end_user": {"id": "u"}, "deployment_id": str(setup["inactive"].pk)},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "deployment_inactive"


def test_a_missing_or_wrong_key_is_401(client, setup):
    missing = client.post(URL, {"end_user": {"id": "u"}}, content_type="application/json")
    wrong = post(client, "cp_sk_000000000000_wrong", {"end_user": {"id": "u"}})
    tenant_api_key_revoke(api_key=setup["key"].api_key)
    revoked = post(client, setup["key"].plaintext, {"end_user": {"id": "u"}})
    for response in (missing, wrong, revoked):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert "Missing API key" in missing.json()["error"]["message"]
    assert "wrong or has been revoked" in wrong.json()["error"]["message"]


def test_a_tenant_has_several_keys_and_each_works(client, setup):
    second = tenant_api_key_create(tenant=setup["tenant"], name="second")
    assert post(client, second.plaintext, {"end_user": {"id": "u"}}).status_code == 201
    assert post(client, setup["key"].plaintext, {"end_user": {"id": "u"}}).status_code == 201


def test_deleting_a_session_revokes_it_and_the_modal_then_says_so(client, setup):
    body = post(client, setup["key"].plaintext, {"end_user": {"id": "u"}}).json()
    response = client.delete(
        f"{URL}/{body['id']}", HTTP_AUTHORIZATION=f"Bearer {setup['key'].plaintext}"
    )
    assert response.status_code == 204
    page = client.get(body["url"].split("testserver", 1)[1])
    assert page.status_code == 403
    assert b"has been closed" in page.content


def test_a_session_of_tenant_a_never_shows_tenant_b_users_or_apps(client, setup):
    other = tenant_create(name="Globex")
    other_key = tenant_api_key_create(tenant=other, name="k")
    secret_app = factories.make_api_key_app(slug="globex-only", tenant=other)
    other_flow = factories.make_flow(tenant=other, apps=[secret_app])
    other_deployment = factories.make_deployment(tenant=other, flows=[other_flow])
    factories.make_end_user(tenant=other, external_id="u-1", email="b@globex.test")

    # Tenant A cannot name B's deployment or B's app.
    response = post(
        client,
        setup["key"].plaintext,
        {"end_user": {"id": "u-1"}, "deployment_id": str(other_deployment.pk)},
    )
    assert response.status_code == 404
    response = post(
        client, setup["key"].plaintext, {"end_user": {"id": "u-1"}, "apps": ["globex-only"]}
    )
    assert response.status_code == 422
    # A's session for the same external id is A's own user and lists only A's apps.
    body = post(client, setup["key"].plaintext, {"end_user": {"id": "u-1"}}).json()
    session = ConnectSession.objects.get(pk=body["id"])
    assert session.end_user.tenant == setup["tenant"]
    page = client.get(body["url"].split("testserver", 1)[1])
    assert b"globex" not in page.content.lower()
    # And B's key cannot revoke A's session.
    response = client.delete(
        f"{URL}/{body['id']}", HTTP_AUTHORIZATION=f"Bearer {other_key.plaintext}"
    )
    assert response.status_code == 404
    session.refresh_from_db()
    assert session.revoked_at is None


def test_the_openapi_schema_describes_the_sessions_api(client, db):
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/sessions" in schema["paths"]
    operation = schema["paths"]["/api/v1/sessions"]["post"]
    assert {"201", "401", "404", "422"} <= set(operation["responses"])
    assert "/api/v1/sessions/{session_id}" in schema["paths"]
