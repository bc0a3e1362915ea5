"""Verification by a real Celery worker on Redis: against the sandbox provider and a local one.

A credential is created only once its provider accepted it (``credential_connect``, inline);
the worker verifies credentials that already exist: a queued verification, the re-verification
sweep, and pending credentials the pending sweep finds again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.db import connections, transaction
from werkzeug import Response

from accounts.services.audit import Actor
from integrations.models import Credential, Event
from integrations.services.credentials import NewSecret
from integrations.services.jobs import verification_enqueue
from integrations.services.verification import ConnectKind, credential_connect
from integrations.tasks import sweep_pending_credentials_stuck, sweep_reverify_due_credentials
from sandbox.services import sandbox_api_key_create, sandbox_api_key_revoke
from tests import factories
from tests.jobs.conftest import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def _status(credential: Credential) -> str:
    return Credential.objects.get(pk=credential.pk).status


def _pending(end_user, app, key: str) -> Credential:
    """A credential waiting for its verification (the factory writes it as a row directly)."""
    return factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": key}, status=Credential.Status.PENDING
    )


def _verify_later(credential: Credential) -> None:
    with transaction.atomic():
        verification_enqueue(credential_id=credential.pk)


def _event_types(tenant) -> list[str]:
    return list(
        Event.objects.filter(tenant=tenant).order_by("created_at").values_list("type", flat=True)
    )


def test_a_pending_api_key_is_verified_by_the_worker_and_becomes_active_with_its_identity(
    broker, end_user, api_key_app, alice
):
    _, key = sandbox_api_key_create(account=alice, name="jobs")
    credential = _pending(end_user, api_key_app, key)
    with broker.worker():
        _verify_later(credential)
        wait_until(lambda: _status(credential) == "active", what="the verification")

    credential.refresh_from_db()
    assert credential.identity == "alice@sandbox.test"
    assert credential.last_verified_at is not None
    assert credential.next_verification_at is not None
    assert _event_types(end_user.tenant) == ["credential.verified"]


def test_a_key_connected_at_entry_is_active_at_once_without_waiting_for_the_worker(
    broker, end_user, api_key_app, alice
):
    _, key = sandbox_api_key_create(account=alice, name="jobs")

    # No worker runs: the provider was asked inline, before the credential existed.
    connection = credential_connect(
        end_user=end_user,
        app=api_key_app,
        new=NewSecret(secret={"api_key": key}),
        actor=Actor.end_user(end_user.pk),
    )

    assert connection.kind == ConnectKind.CONNECTED
    assert _status(connection.credential) == "active"
    assert connection.credential.identity == "alice@sandbox.test"
    assert _event_types(end_user.tenant) == ["credential.created", "credential.verified"]


def test_a_revoked_api_key_is_found_by_the_reverify_sweep_and_marked_invalid_with_the_reason(
    broker, end_user, api_key_app, alice
):
    api_key, key = sandbox_api_key_create(account=alice, name="jobs")
    credential = credential_connect(
        end_user=end_user,
        app=api_key_app,
        new=NewSecret(secret={"api_key": key}),
        actor=Actor.end_user(end_user.pk),
    ).credential
    assert _status(credential) == "active"
    with broker.worker():
        sandbox_api_key_revoke(api_key=api_key)
        # Its re-verification falls due (the sweep reads next_verification_at).
        Credential.objects.filter(pk=credential.pk).update(next_verification_at=LONG_AGO)
        sweep_reverify_due_credentials.delay()
        wait_until(lambda: _status(credential) == "invalid", what="the re-verification")

    credential.refresh_from_db()
    assert "revoked" in credential.last_verification_error
    failed = Event.objects.get(type="credential.verification_failed")
    assert failed.data["credential_id"] == str(credential.pk)
    assert "revoked" in failed.data["reason"]


def test_a_provider_answering_500_then_200_is_retried_and_becomes_active_never_invalid(
    broker, end_user, make_app, httpserver
):
    seen_statuses: list[str] = []
    answers = iter([Response("upstream down", status=500)])

    def provider(request):
        credential = Credential.objects.filter(end_user=end_user).first()
        seen_statuses.append(credential.status if credential else "?")
        connections.close_all()  # this runs in the receiver's thread
        return next(answers, None) or Response(
            '{"email": "ada@provider.test"}', content_type="application/json"
        )

    httpserver.expect_request("/me").respond_with_handler(provider)
    app = make_app(httpserver.url_for("/"))
    credential = _pending(end_user, app, "key-123")
    with broker.worker():
        _verify_later(credential)
        wait_until(lambda: _status(credential) == "active", what="the retried verification")

    assert len(httpserver.log) == 2
    assert seen_statuses == ["pending", "pending"]
    credential.refresh_from_db()
    assert credential.identity == "ada@provider.test"
    assert not Event.objects.filter(type="credential.verification_failed").exists()


def test_a_429_is_retried_no_sooner_than_its_retry_after_and_never_changes_the_status(
    broker, end_user, make_app, httpserver
):
    calls: list[float] = []

    def provider(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response('{"email": "ada@provider.test"}', content_type="application/json")

    httpserver.expect_request("/me").respond_with_handler(provider)
    app = make_app(httpserver.url_for("/"))
    credential = _pending(end_user, app, "key-123")
    with broker.worker():
        _verify_later(credential)
        wait_until(lambda: _status(credential) == "active", what="the retried verification")

    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.95
    assert not Event.objects.filter(type="credential.verification_failed").exists()


def test_a_provider_refusing_the_key_with_401_marks_it_invalid_with_the_providers_reason(
    broker, end_user, make_app, httpserver
):
    httpserver.expect_request("/me").respond_with_json({"message": "Bad credentials"}, status=401)
    app = make_app(httpserver.url_for("/"))
    credential = _pending(end_user, app, "key-123")
    with broker.worker():
        _verify_later(credential)
        wait_until(lambda: _status(credential) == "invalid", what="the verification")

    credential.refresh_from_db()
    assert credential.last_verification_error.endswith("Bad credentials.")
    assert len(httpserver.log) == 1
    assert _event_types(end_user.tenant) == ["credential.verification_failed"]


def test_a_pending_credential_whose_job_was_lost_to_a_broker_outage_is_verified_by_the_sweep(
    broker, end_user, api_key_app, alice, settings
):
    _, key = sandbox_api_key_create(account=alice, name="jobs")
    credential = _pending(end_user, api_key_app, key)
    broker.down()
    _verify_later(credential)
    # Queueing did not fail the caller: the job was not queued, nothing else went wrong.
    assert _status(credential) == "pending"

    broker.up()
    settings.PORTAL_PENDING_AFTER_SECONDS = 0  # as if the sweep ran minutes later
    with broker.worker():
        sweep_pending_credentials_stuck.delay()
        wait_until(lambda: _status(credential) == "active", what="the swept verification")

    credential.refresh_from_db()
    assert credential.identity == "alice@sandbox.test"


def test_an_active_credential_whose_provider_is_down_keeps_its_status_through_every_retry(
    broker, end_user, make_app, httpserver, settings
):
    settings.PORTAL_VERIFY_MAX_RETRIES = 2
    httpserver.expect_request("/me").respond_with_data("down", status=503)
    app = make_app(httpserver.url_for("/"))
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": "key-123"}, next_verification_at=None
    )
    Credential.objects.filter(pk=credential.pk).update(next_verification_at=LONG_AGO)
    with broker.worker():
        sweep_reverify_due_credentials.delay()
        wait_until(lambda: len(httpserver.log) == 3, what="the first try and two retries")
        time.sleep(0.5)  # a fourth attempt would come within this

    assert len(httpserver.log) == 3
    credential.refresh_from_db()
    assert credential.status == "active"
    assert credential.verification_attempts == 3
    # The sweep leased it, so it is looked at again later rather than at every sweep.
    assert credential.next_verification_at > LONG_AGO
