"""Hand-off links through the sessions API: a session made for another person, longer lived
(up to the tenant's maximum, never above 7 days), optionally single use, revocable, readable
(never its token), and scoped to its tenant."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from integrations.models import ConnectSession
from integrations.selectors import (
    SPENT_SESSION_GRACE,
    SessionUnusable,
    connect_session_for_token,
)
from integrations.services.connect_sessions import connect_session_spend
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/sessions"


@pytest.fixture
def flow(tenant):
    app = factories.make_api_key_app(slug="crm")
    flow = factories.make_flow(tenant=tenant, apps=[app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    return flow


def handoff(api, **handoff_fields):
    length = handoff_fields.pop("session_length", None)
    body = {"end_user": {"id": "u-1", "name": "Ada Lovelace"}, "handoff": handoff_fields}
    if length:
        body["session_length"] = length
    return api.post(URL, body)


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_a_handoff_link_lasts_seven_days_by_default_and_says_who_it_is_for(api, flow):
    response = handoff(
        api, recipient_name="Grace (IT)", recipient_email="grace@customer.test", single_use=True
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "token", "url", "expires_at", "handoff"}
    assert body["handoff"] == {
        "single_use": True,
        "recipient_name": "Grace (IT)",
        "recipient_email": "grace@customer.test",
    }
    session = ConnectSession.objects.get(pk=body["id"])
    assert session.source == ConnectSession.Source.HANDOFF
    assert session.token_hash != body["token"]
    lifetime = session.expires_at - timezone.now()
    assert timedelta(days=7) - timedelta(minutes=1) < lifetime <= timedelta(days=7)


@pytest.mark.parametrize("length", ["2d", "36h", "90m"])
def test_a_handoff_link_takes_a_length_up_to_the_maximum(api, flow, length):
    response = handoff(api, session_length=length)

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("length", ["8d", "169h", "20000m"])
def test_a_handoff_link_longer_than_seven_days_is_a_422_naming_the_field(api, flow, length):
    response = handoff(api, session_length=length)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "session_too_long"
    assert "session_length" in error["fields"]
    assert "168 hours" in error["message"]
    assert not ConnectSession.objects.exists()


def test_the_tenants_own_maximum_bounds_the_length_and_is_the_default(api, tenant, flow):
    tenant.handoff_max_hours = 24
    tenant.save()

    too_long = handoff(api, session_length="2d")
    default = handoff(api)

    assert too_long.status_code == 422
    assert error_of(too_long)["fields"]["session_length"] == "At most 24h for a hand-off link."
    session = ConnectSession.objects.get(pk=default.json()["id"])
    assert timedelta(hours=23) < session.expires_at - timezone.now() <= timedelta(hours=24)


def test_an_ordinary_session_stays_at_most_one_hour(api, flow):
    response = api.post(URL, {"end_user": {"id": "u-1"}, "session_length": "2h"})

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"session_length": "At most 1h."}
    assert "handoff" not in api.post(URL, {"end_user": {"id": "u-1"}}).json()


def test_a_bad_recipient_email_or_an_unknown_handoff_field_is_a_422(api, flow):
    assert handoff(api, recipient_email="not-an-email").status_code == 422
    assert handoff(api, lifetime="7d").status_code == 422
    assert not ConnectSession.objects.exists()


def test_reading_a_handoff_link_shows_its_state_and_opens_but_never_its_token(api, client, flow):
    body = handoff(api, single_use=True).json()
    client.get(
        path_of(body["url"]),
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    )

    response = api.get(f"{URL}/{body['id']}")

    assert response.status_code == 200
    read = response.json()
    assert body["token"] not in response.content.decode()
    assert read["kind"] == "handoff" and read["status"] == "open"
    assert read["end_user_id"] == "u-1"
    assert read["handoff"]["single_use"] is True and read["handoff"]["spent_at"] is None
    assert [o["client"] for o in read["opens"]] == ["Firefox on Linux"]


def test_a_spent_single_use_link_reads_as_spent_and_opens_the_used_page(api, client, flow):
    body = handoff(api, single_use=True).json()
    session = ConnectSession.objects.get(pk=body["id"])
    assert connect_session_spend(session=session) is True
    assert connect_session_spend(session=session) is False  # once

    read = api.get(f"{URL}/{body['id']}").json()
    page = client.get(path_of(body["url"]))

    assert read["status"] == "spent" and read["handoff"]["spent_at"]
    assert page.status_code == 403
    assert "This link has already been used." in page.content.decode()
    assert "ask for a new link" in page.content.decode()


def test_a_link_that_is_not_single_use_is_never_spent(api, flow):
    body = handoff(api).json()
    session = ConnectSession.objects.get(pk=body["id"])

    assert connect_session_spend(session=session) is False
    assert api.get(f"{URL}/{body['id']}").json()["status"] == "open"


def test_revoking_a_handoff_link_closes_it(api, client, flow):
    body = handoff(api).json()

    assert api.delete(f"{URL}/{body['id']}").status_code == 204

    assert api.get(f"{URL}/{body['id']}").json()["status"] == "revoked"
    page = client.get(path_of(body["url"]))
    assert page.status_code == 403
    assert b"has been closed" in page.content


def test_another_tenants_handoff_link_is_a_404_to_read_and_to_revoke(api, other_api, flow):
    body = handoff(api, recipient_name="Grace (IT)").json()

    for response in (other_api.get(f"{URL}/{body['id']}"), other_api.delete(f"{URL}/{body['id']}")):
        assert response.status_code == 404
        assert "Grace" not in response.content.decode()
    assert ConnectSession.objects.get(pk=body["id"]).revoked_at is None


def test_the_openapi_schema_describes_handoff_links(client, db):
    schema = client.get("/api/v1/openapi.json").json()

    create = schema["paths"]["/api/v1/sessions"]["post"]
    assert "hand-off" in create["summary"]
    assert "get" in schema["paths"]["/api/v1/sessions/{session_id}"]
    components = schema["components"]["schemas"]
    assert set(components["HandoffIn"]["properties"]) == {
        "single_use",
        "recipient_name",
        "recipient_email",
    }
    assert "spent" in str(components["SessionDetailOut"])


def test_the_page_that_spent_a_link_keeps_working_for_fifteen_minutes_and_no_longer(api, flow):
    body = handoff(api, single_use=True).json()
    session = ConnectSession.objects.get(pk=body["id"])
    connect_session_spend(session=session)

    assert connect_session_for_token(token=body["token"], from_page=True).pk == session.pk
    with pytest.raises(SessionUnusable):
        connect_session_for_token(token=body["token"])  # opened again
    ConnectSession.objects.filter(pk=session.pk).update(
        spent_at=timezone.now() - SPENT_SESSION_GRACE - timedelta(seconds=1)
    )
    with pytest.raises(SessionUnusable) as refused:
        connect_session_for_token(token=body["token"], from_page=True)
    assert refused.value.problem.name == "SPENT"
