"""The modal's edges refuse control characters: in its addresses (a plain 400) and in its forms
(an error next to the field, nothing stored, no provider asked)."""

from __future__ import annotations

import pytest

from accounts.models import EndUser
from integrations.models import Credential
from integrations.services.connect_sessions import connect_session_create
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def modal(tenant, end_user):
    # Port 9 (discard): a form that reached the provider would fail as "unavailable", not 422.
    app = factories.make_api_key_app(slug="keyed", api_base_url="http://127.0.0.1:9")
    flow = factories.make_flow(tenant=tenant, apps=[app])
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=deployment)
    return issued.token


@pytest.mark.parametrize("query", ["?q=a%00b", "?q=a%1Bb", "?app=keyed%08", "?flow=%7F"])
def test_a_control_character_in_the_modals_address_is_a_plain_400(client, modal, query):
    response = client.get(f"/connect/{modal}/{query}")

    assert response.status_code == 400
    assert "control character" in response.content.decode()


def test_a_control_character_in_an_embed_link_is_refused_before_any_user_is_made(client, tenant):
    response = client.get("/embed/", {"tenant": str(tenant.pk), "user": "a\x00b", "hash": "0" * 64})

    assert response.status_code == 400
    assert not EndUser.objects.filter(tenant=tenant).exists()


@pytest.mark.parametrize(
    ("fields", "field_id"),
    [
        ({"api_key": "key\x00123456789"}, "api_key"),
        ({"api_key": "key\r\n123456789"}, "api_key"),
        # The label's rule is the service's, shown above the form.
        ({"api_key": "key-123456789", "portal_label": "Work\x07"}, None),
    ],
    ids=["nul-in-key", "crlf-in-key", "bell-in-label"],
)
def test_a_control_character_in_the_connect_form_is_an_error_next_to_the_field(
    client, modal, fields, field_id
):
    response = client.post(
        f"/connect/{modal}/apps/keyed/accounts/",
        fields,
        HTTP_HX_REQUEST="true",
        HTTP_X_PORTAL_SESSION=modal,
    )

    assert response.status_code == 422, response.content
    body = response.content.decode()
    # Django's own rule names a NUL first; ours every other control character.
    assert "Null characters are not allowed" in body or "not contain control characters" in body
    if field_id:
        assert f'id="connect-keyed-{field_id}_error"' in body
    assert not Credential.objects.exists()
