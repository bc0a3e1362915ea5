"""The user-hash entry: a page opens the modal with a user id and its HMAC, no API call."""

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.services.tenants import tenant_create, tenant_signing_secret, tenant_user_hash
from integrations.models import ConnectSession
from tests import factories


@pytest.fixture
def tenant_with_flow(db):
    tenant = tenant_create(name="Acme", allowed_origins=["https://app.acme.test"])
    app = factories.make_api_key_app(slug="crm")
    deployment = factories.make_deployment(
        tenant=tenant, flows=[factories.make_flow(tenant=tenant, apps=[app])]
    )
    return tenant, deployment


def start(client, **params):
    return client.get("/embed/start", params)


def test_the_hash_is_the_hex_hmac_sha256_of_the_user_id(tenant_with_flow):
    tenant, _ = tenant_with_flow
    expected = hmac.new(
        tenant_signing_secret(tenant=tenant).encode(), b"user-7", hashlib.sha256
    ).hexdigest()
    assert tenant_user_hash(tenant=tenant, user_id="user-7") == expected


def test_a_right_hash_opens_a_short_lived_session_for_that_user(client, tenant_with_flow):
    tenant, deployment = tenant_with_flow
    response = start(
        client,
        tenant=tenant.pk,
        user="user-7",
        hash=tenant_user_hash(tenant=tenant, user_id="user-7"),
        deployment=deployment.pk,
        embed_origin="https://app.acme.test",
        hide_prompt="1",
        close_button="0",
        app="crm",
    )
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path.startswith("/connect/")
    assert parse_qs(location.query) == {
        "embed_origin": ["https://app.acme.test"],
        "hide_prompt": ["1"],
        "app": ["crm"],
        "close_button": ["0"],
    }
    session = ConnectSession.objects.get()
    assert session.source == ConnectSession.Source.USER_HASH
    assert session.end_user.external_id == "user-7" and session.deployment == deployment
    assert (session.expires_at - session.created_at).total_seconds() <= 1800
    assert client.get(location.path).status_code == 200


@pytest.mark.parametrize(
    "case", ["wrong", "other_tenant", "switched_off", "other_user", "malformed"]
)
def test_a_bad_hash_is_refused_and_creates_nothing(client, tenant_with_flow, case):
    tenant, _ = tenant_with_flow
    other = tenant_create(name="Globex")
    params = {
        "tenant": tenant.pk,
        "user": "user-7",
        "hash": tenant_user_hash(tenant=tenant, user_id="user-7"),
    }
    if case == "wrong":
        params["hash"] = "0" * 64
    elif case == "other_tenant":
        params["hash"] = tenant_user_hash(tenant=other, user_id="user-7")
    elif case == "switched_off":
        tenant.user_hash_enabled = False
        tenant.save()
    elif case == "other_user":
        params["user"] = "user-8"
    elif case == "malformed":
        params["hash"] = "<script>alert(1)</script>"
    response = start(client, **params)
    assert response.status_code == 403
    assert b"could not be verified" in response.content
    assert b"<script>alert(1)</script>" not in response.content
    assert ConnectSession.objects.count() == 0
    assert not tenant.end_users.exists()


def test_an_unknown_tenant_gets_the_same_answer_as_a_wrong_hash(client, tenant_with_flow):
    unknown = start(client, tenant="00000000-0000-0000-0000-000000000000", user="u", hash="0" * 64)
    garbage = start(client, tenant="not-a-uuid", user="u", hash="0" * 64)
    assert unknown.status_code == garbage.status_code == 403
    assert (
        b"could not be verified" in unknown.content and b"could not be verified" in garbage.content
    )


def test_an_inactive_or_foreign_deployment_is_refused(client, tenant_with_flow):
    tenant, deployment = tenant_with_flow
    deployment.is_active = False
    deployment.save()
    response = start(
        client,
        tenant=tenant.pk,
        user="u",
        hash=tenant_user_hash(tenant=tenant, user_id="u"),
        deployment=deployment.pk,
    )
    assert response.status_code == 403
    assert b"deployment" in response.content
    assert ConnectSession.objects.count() == 0
