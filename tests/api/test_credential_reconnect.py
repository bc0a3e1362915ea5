"""POST /api/v1/credentials/{id}/reconnect: a new key in place, only for the same account."""

from __future__ import annotations

import pytest

from integrations.models import Credential, Event
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

OLD_KEY = "old-key-0000000000000001"
NEW_KEY = "new-key-0000000000000002"


@pytest.fixture
def provider(httpserver):
    """A provider whose /me says which account each key belongs to."""
    for key, email in ((OLD_KEY, "ada@example.com"), (NEW_KEY, "ada@example.com")):
        httpserver.expect_request("/me", headers={"X-API-Key": key}).respond_with_json(
            {"email": email}
        )
    httpserver.expect_request(
        "/me", headers={"X-API-Key": "other-key-000000000000003"}
    ).respond_with_json({"email": "bob@example.com"})
    httpserver.expect_request(
        "/me", headers={"X-API-Key": "wrong-key-000000000000004"}
    ).respond_with_json({"message": "Invalid API key"}, status=401)
    httpserver.expect_request(
        "/me", headers={"X-API-Key": "slow-key-0000000000000005"}
    ).respond_with_data("busy", status=503, headers={"Retry-After": "7"})
    return httpserver


@pytest.fixture
def credential(end_user, provider):
    app = factories.make_api_key_app(api_base_url=provider.url_for("/"))
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"api_key": OLD_KEY},
        identity="ada@example.com",
        label="Main",
        status=Credential.Status.INVALID,
    )


def _reconnect(api, credential, key):
    return api.post(f"/api/v1/credentials/{credential.pk}/reconnect", {"fields": {"api_key": key}})


def test_a_key_of_the_same_account_replaces_the_secret_in_place_and_reactivates_it(api, credential):
    response = _reconnect(api, credential, NEW_KEY)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["label"], body["status"]) == (str(credential.pk), "Main", "active")
    credential.refresh_from_db()
    assert credential.secret_hint == f"…{NEW_KEY[-4:]}"
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.reconnected"]
    assert Event.objects.get().data["credential_id"] == str(credential.pk)


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("other-key-000000000000003", 422, "identity_mismatch"),
        ("wrong-key-000000000000004", 422, "credential_rejected"),
        ("slow-key-0000000000000005", 503, "provider_unavailable"),
    ],
    ids=["another-account", "refused", "provider-down"],
)
def test_a_key_that_is_not_the_same_working_account_changes_nothing(
    api, credential, key, status, code
):
    before = Credential.objects.values().get(pk=credential.pk)

    response = _reconnect(api, credential, key)

    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert Credential.objects.values().get(pk=credential.pk) == before
    assert not Event.objects.exists()
    if status == 503:
        assert response["Retry-After"] == "7"


def test_another_tenants_credential_is_a_404(other_api, credential):
    response = _reconnect(other_api, credential, NEW_KEY)

    assert response.status_code == 404
