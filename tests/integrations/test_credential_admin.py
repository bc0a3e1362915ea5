"""The credential's admin: renaming and replacing a key go through the credential's transitions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import AuditLogEntry, Membership
from integrations.models import Credential, Event
from tests import factories

pytestmark = pytest.mark.django_db

OLD_KEY = "old-key-0000000000000001"
NEW_KEY = "new-key-0000000000000002"
OTHER_KEY = "bob-key-0000000000000003"


@pytest.fixture
def provider(httpserver):
    httpserver.expect_request("/me", headers={"X-API-Key": NEW_KEY}).respond_with_json(
        {"email": "ada@example.com"}
    )
    httpserver.expect_request("/me", headers={"X-API-Key": OTHER_KEY}).respond_with_json(
        {"email": "bob@example.com"}
    )
    return httpserver


@pytest.fixture
def credential(end_user, provider):
    app = factories.make_api_key_app(api_base_url=provider.url_for("/"))
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"api_key": OLD_KEY},
        identity="ada@example.com",
        status=Credential.Status.INVALID,
    )


def _staff_client(client, tenant):
    user = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(user)
    return client


def _replace_url(credential):
    return reverse("admin:integrations_credential_replace_secret", args=[credential.pk])


def test_staff_replace_a_key_in_place_when_the_provider_says_it_is_the_same_account(
    client, tenant, credential
):
    staff = _staff_client(client, tenant)

    response = staff.post(_replace_url(credential), {"api_key": NEW_KEY})

    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.secret_hint == f"…{NEW_KEY[-4:]}"
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.reconnected"]
    assert AuditLogEntry.objects.filter(
        action="credential.reconnect", actor_type="staff", credential=credential
    ).exists()


def test_a_key_of_another_account_is_refused_and_changes_nothing(client, tenant, credential):
    staff = _staff_client(client, tenant)
    before = Credential.objects.values().get(pk=credential.pk)

    response = staff.post(_replace_url(credential), {"api_key": OTHER_KEY})

    assert response.status_code == 200
    assert "bob@example.com" in response.content.decode()
    assert "Nothing was changed" in response.content.decode()
    assert Credential.objects.values().get(pk=credential.pk) == before
    assert not Event.objects.exists()


def test_another_tenants_credential_cannot_be_reached(client, other_tenant, credential):
    staff = _staff_client(client, other_tenant)

    response = staff.get(_replace_url(credential))

    assert response.status_code == 404


def test_renaming_in_the_admin_is_a_transition_with_its_event(client, tenant, credential):
    staff = _staff_client(client, tenant)
    change_url = reverse("admin:integrations_credential_change", args=[credential.pk])

    response = staff.post(change_url, {"label": "Billing"})

    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.label == "Billing"
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.renamed"]


def test_deleting_an_end_user_in_the_admin_disconnects_each_account_with_its_events(
    client, tenant, end_user, credential
):
    staff = _staff_client(client, tenant)
    delete_url = reverse("admin:accounts_enduser_delete", args=[end_user.pk])

    response = staff.post(delete_url, {"post": "yes"})

    assert response.status_code == 302
    assert not Credential.objects.exists()
    deleted = Event.objects.get(type="credential.deleted")
    assert deleted.data["credential_id"] == str(credential.pk)
    assert AuditLogEntry.objects.filter(action="end_user.delete", actor_type="staff").exists()
