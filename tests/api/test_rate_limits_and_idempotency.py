"""Rate limits per API key (429 with Retry-After) and Idempotency-Key on creating POSTs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import EndUser
from api.models import IdempotencyKey
from api.tasks import purge_idempotency_keys
from tests import factories
from tests.api.conftest import client_for, error_of

pytestmark = pytest.mark.django_db


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(api, settings):
    settings.PORTAL_API_RATE_LIMIT = "3/m"

    answers = [api.get("/api/v1/users").status_code for _ in range(3)]
    limited = api.get("/api/v1/users")

    assert answers == [200, 200, 200]
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60


def test_the_limit_is_counted_per_key(api, tenant, settings):
    settings.PORTAL_API_RATE_LIMIT = "2/m"
    second_key = client_for(tenant)
    api.get("/api/v1/users")
    api.get("/api/v1/users")

    assert api.get("/api/v1/users").status_code == 429
    assert second_key.get("/api/v1/users").status_code == 200


def test_the_same_idempotency_key_and_body_replays_the_first_answer(api, tenant):
    body = {"id": "user-7", "email": "seven@example.com"}

    first = api.post("/api/v1/users", body, headers={"Idempotency-Key": "create-user-7"})
    EndUser.objects.filter(tenant=tenant, external_id="user-7").update(name="Changed since")
    replay = api.post(
        "/api/v1/users",
        {"email": "seven@example.com", "id": "user-7"},  # same meaning, another key order
        headers={"Idempotency-Key": "create-user-7"},
    )

    assert first.status_code == 201
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first


def test_the_same_idempotency_key_with_another_body_is_a_422(api, tenant):
    api.post("/api/v1/users", {"id": "user-7"}, headers={"Idempotency-Key": "k1"})

    response = api.post("/api/v1/users", {"id": "user-8"}, headers={"Idempotency-Key": "k1"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert not EndUser.objects.filter(tenant=tenant, external_id="user-8").exists()


def test_idempotency_keys_belong_to_one_tenant(api, other_api, tenant, other_tenant):
    mine = api.post("/api/v1/users", {"id": "user-7"}, headers={"Idempotency-Key": "shared"})
    theirs = other_api.post(
        "/api/v1/users", {"id": "user-7"}, headers={"Idempotency-Key": "shared"}
    )

    assert mine.status_code == 201
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert EndUser.objects.filter(tenant=other_tenant, external_id="user-7").exists()


def test_a_failed_request_does_not_spend_its_key(api, tenant):
    failed = api.post(
        "/api/v1/users", {"id": "user-9", "email": "bad"}, headers={"Idempotency-Key": "retry-me"}
    )
    assert failed.status_code == 422
    assert not IdempotencyKey.objects.filter(key="retry-me").exists()

    fixed = api.post(
        "/api/v1/users",
        {"id": "user-9", "email": "nine@example.com"},
        headers={"Idempotency-Key": "retry-me"},
    )

    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed


def test_a_request_still_running_with_the_key_is_a_409(api, tenant):
    body_request = api.post("/api/v1/users", {"id": "user-5"}, headers={"Idempotency-Key": "busy"})
    assert body_request.status_code == 201
    # Make the stored key look like a first request that is still running.
    IdempotencyKey.objects.filter(key="busy").update(
        status_code=None, locked_until=timezone.now() + timedelta(minutes=1)
    )

    response = api.post("/api/v1/users", {"id": "user-5"}, headers={"Idempotency-Key": "busy"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_in_progress"


def test_an_expired_key_can_be_used_again(api, tenant, settings):
    api.post("/api/v1/users", {"id": "user-5"}, headers={"Idempotency-Key": "old"})
    IdempotencyKey.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(1))

    response = api.post("/api/v1/users", {"id": "user-6"}, headers={"Idempotency-Key": "old"})

    assert response.status_code == 201
    assert response.json()["id"] == "user-6"


def test_the_stored_response_is_sealed_not_plaintext(api, tenant):
    api.post(
        "/api/v1/users",
        {"id": "user-5", "email": "sealed@example.com"},
        headers={"Idempotency-Key": "sealed"},
    )

    record = IdempotencyKey.objects.get(key="sealed")
    assert record.status_code == 201
    assert b"sealed@example.com" not in bytes(record.secret_ciphertext)


def test_an_invalid_idempotency_key_is_a_422(api):
    response = api.post("/api/v1/users", {"id": "user-5"}, headers={"Idempotency-Key": "x" * 300})

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_idempotency_key"


def test_the_purge_job_deletes_only_expired_keys(api, tenant):
    api.post("/api/v1/users", {"id": "user-1"}, headers={"Idempotency-Key": "fresh"})
    api.post("/api/v1/users", {"id": "user-2"}, headers={"Idempotency-Key": "stale"})
    IdempotencyKey.objects.filter(key="stale").update(expires_at=timezone.now() - timedelta(1))

    removed = purge_idempotency_keys()

    assert removed == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


def test_retrying_an_install_with_the_same_key_replays_the_201_instead_of_a_409(api, end_user):
    app = factories.make_api_key_app(slug="crm")
    factories.make_credential(end_user=end_user, app=app)
    flow = factories.make_flow(tenant=end_user.tenant, apps=[app])
    factories.make_deployment(tenant=end_user.tenant, flows=[flow])
    body = {"flow_id": str(flow.pk)}

    first = api.post(
        "/api/v1/users/user-1/installations", body, headers={"Idempotency-Key": "install-1"}
    )
    retry = api.post(
        "/api/v1/users/user-1/installations", body, headers={"Idempotency-Key": "install-1"}
    )
    without_key = api.post("/api/v1/users/user-1/installations", body)

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert without_key.status_code == 409
