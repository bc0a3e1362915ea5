"""The users API: read with integrations, create or update by id, list in pages, delete."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import EndUser
from accounts.services.audit import Actor
from integrations.models import Credential, Event, Installation
from integrations.services.installations import installation_install
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def _installed(end_user, app, credential, *, enabled=True):
    flow = factories.make_flow(tenant=end_user.tenant, apps=[app])
    factories.make_deployment(tenant=end_user.tenant, flows=[flow])
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    if not enabled:
        Installation.objects.filter(pk=installation.pk).update(enabled=False)
    return installation


def test_get_user_shows_each_app_with_enabled_the_credential_in_use_and_all_credentials(
    api, end_user
):
    app = factories.make_api_key_app(slug="crm")
    first = factories.make_credential(end_user=end_user, app=app, identity="a@crm.test")
    second = factories.make_credential(end_user=end_user, app=app, identity="b@crm.test")
    installation = _installed(end_user, app, second)
    unused_app = factories.make_api_key_app(slug="mailer")
    unused = factories.make_credential(end_user=end_user, app=unused_app, identity="m@x.test")

    response = api.get("/api/v1/users/user-1")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "user-1"
    assert body["email"] == "ada@example.com"
    crm = body["integrations"]["crm"]
    assert crm["enabled"] is True
    assert crm["credential_id"] == str(second.pk)
    assert [c["id"] for c in crm["all_credentials"]] == [str(first.pk), str(second.pk)]
    assert crm["all_credentials"][0]["identity"] == "a@crm.test"
    assert crm["all_credentials"][0]["status"] == "active"
    assert {"label", "created_at"} <= set(crm["all_credentials"][0])
    assert crm["installations"] == [
        {
            "installation_id": str(installation.pk),
            "flow_id": str(installation.flow_id),
            "enabled": True,
            "credential_id": str(second.pk),
        }
    ]
    mailer = body["integrations"]["mailer"]
    assert mailer["enabled"] is False
    assert mailer["credential_id"] == str(unused.pk)


def test_get_user_reports_an_installed_app_without_an_account_as_not_enabled(api, end_user):
    app = factories.make_api_key_app(slug="erp")
    flow = factories.make_flow(tenant=end_user.tenant, apps=[app])
    factories.make_deployment(tenant=end_user.tenant, flows=[flow])
    installation_install(end_user=end_user, flow=flow, actor=Actor.system())

    body = api.get("/api/v1/users/user-1").json()

    assert body["integrations"]["erp"]["enabled"] is False
    assert body["integrations"]["erp"]["credential_id"] is None
    assert body["integrations"]["erp"]["all_credentials"] == []


def test_get_user_never_shows_a_secret(api, end_user):
    app = factories.make_api_key_app(slug="crm")
    factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": "sk_live_DO_NOT_SHOW_1234567890"}
    )

    response = api.get("/api/v1/users/user-1")

    assert response.status_code == 200
    assert "DO_NOT_SHOW" not in response.content.decode()


def test_an_unknown_user_is_a_404_in_the_error_shape(api):
    response = api.get("/api/v1/users/nobody")

    assert response.status_code == 404
    assert error_of(response)["code"] == "user_not_found"


def test_put_creates_a_user_then_updates_only_the_fields_given(api, tenant):
    created = api.put("/api/v1/users/user-9", {"email": "grace@example.com", "name": "Grace"})
    updated = api.put("/api/v1/users/user-9", {"name": "Grace Hopper"})

    assert created.status_code == 201
    assert created.json()["integrations"] == {}
    assert updated.status_code == 200
    user = EndUser.objects.get(tenant=tenant, external_id="user-9")
    assert (user.email, user.name) == ("grace@example.com", "Grace Hopper")
    assert updated.json()["email"] == "grace@example.com"


def test_post_creates_or_updates_a_user_by_the_id_in_the_body(api, end_user):
    created = api.post("/api/v1/users", {"id": "user-2", "name": "Bob"})
    updated = api.post("/api/v1/users", {"id": "user-1", "name": "Ada L."})

    assert created.status_code == 201
    assert created.json()["id"] == "user-2"
    assert updated.status_code == 200
    end_user.refresh_from_db()
    assert end_user.name == "Ada L."


def test_an_invalid_email_is_a_422_naming_the_field_and_creates_nothing(api, tenant):
    response = api.put("/api/v1/users/user-3", {"email": "not-an-email"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_user"
    assert "email" in error["fields"]
    assert not EndUser.objects.filter(tenant=tenant, external_id="user-3").exists()


def test_unknown_body_fields_are_refused(api):
    response = api.put("/api/v1/users/user-3", {"emial": "typo@example.com"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


def test_users_are_listed_oldest_first_in_cursor_pages_that_neither_repeat_nor_skip(api, tenant):
    for n in range(5):
        factories.make_end_user(tenant=tenant, external_id=f"u{n}")

    first = api.get("/api/v1/users?limit=2").json()
    second = api.get(f"/api/v1/users?limit=2&cursor={first['next_cursor']}").json()
    factories.make_end_user(tenant=tenant, external_id="late")
    third = api.get(f"/api/v1/users?limit=2&cursor={second['next_cursor']}").json()

    seen = [u["id"] for page in (first, second, third) for u in page["data"]]
    assert seen == ["u0", "u1", "u2", "u3", "u4", "late"]
    assert third["next_cursor"] is None


def test_a_tampered_cursor_is_a_422(api):
    response = api.get("/api/v1/users?cursor=not-a-cursor")

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_cursor"


def test_deleting_a_user_removes_their_credentials_and_installations_with_events(
    api, tenant, end_user
):
    app = factories.make_api_key_app(slug="crm")
    credential = factories.make_credential(end_user=end_user, app=app, identity="a@crm.test")
    installation = _installed(end_user, app, credential)

    response = api.delete("/api/v1/users/user-1")

    assert response.status_code == 204
    assert not EndUser.objects.filter(pk=end_user.pk).exists()
    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert not Installation.objects.filter(pk=installation.pk).exists()
    types = list(Event.objects.filter(tenant=tenant).values_list("type", flat=True))
    assert {"credential.revoked", "credential.deleted", "installation.deleted"} <= set(types)
    deleted = Event.objects.get(tenant=tenant, type="credential.deleted")
    assert deleted.data["credential_id"] == str(credential.pk)
    assert deleted.data["user_id"] == "user-1"
    assert api.get("/api/v1/users/user-1").status_code == 404


def test_get_user_takes_the_same_number_of_queries_however_many_accounts(api, end_user):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/api/v1/users/user-1").status_code == 200
        return len(captured)

    app = factories.make_api_key_app(slug="crm")
    _installed(end_user, app, factories.make_credential(end_user=end_user, app=app))
    count_queries()  # the key's first use of the minute also records its last use
    few = count_queries()
    for n in range(5):
        other = factories.make_api_key_app(slug=f"app-{n}")
        _installed(end_user, other, factories.make_credential(end_user=end_user, app=other))

    assert count_queries() == few
