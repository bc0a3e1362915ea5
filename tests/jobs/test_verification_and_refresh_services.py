"""Scheduling decided by the verification and refresh services, and the eager (no broker)
mode, against a real local provider (pytest-httpserver)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Credential, Event
from integrations.services.jobs import verification_enqueue
from integrations.services.oauth_clients import oauth_client_set
from integrations.services.refresh import credential_refresh, credential_refresh_due
from integrations.services.sweeps import sweep_pending_credentials
from integrations.services.verification import credential_verify, verification_probe
from integrations.tasks import verify_credential
from tests import factories


@pytest.fixture
def provider(httpserver):
    httpserver.expect_request("/me").respond_with_json({"email": "ada@provider.test"})
    return httpserver.url_for("/")


def test_a_re_verification_runs_six_statements_and_reads_no_other_secret(
    db, end_user, provider, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app(api_base_url=provider, reverify_interval_seconds=86400)
    credential = factories.make_credential(end_user=end_user, app=app, identity="ada@provider.test")

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks():
        assert credential_verify(credential_id=credential.pk).kind == "verified"

    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    # The credential with its app; then, in one transaction, the row locked (with its user and
    # tenant), its new state, the secret's use and the result audited (one insert), the event
    # and the endpoints it goes to.
    kinds = [statement.split()[0] for statement in statements]
    assert kinds == ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "SELECT"], kinds
    assert statements[3].startswith('INSERT INTO "accounts_auditlogentry"')
    assert statements[3].count("credential.") == 2  # credential.use.verify, credential.verify
    assert statements[0].count('FROM "integrations_credential"') == 1
    assert '"integrations_app"' not in statements[1]  # the app is read once
    assert not any('"accounts_tenant"."secret_ciphertext"' in s for s in statements)
    assert not any('"integrations_webhookendpoint"."secret_ciphertext"' in s for s in statements)
    assert not any('"integrations_app"."icon' in s for s in statements)


def test_a_refresh_runs_seven_statements_and_writes_only_what_it_changes(
    db, end_user, httpserver, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/token").respond_with_json(
        {"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3600}
    )
    app = factories.make_oauth_app(token_url=httpserver.url_for("/token"))
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="id", client_secret="secret")
    soon = timezone.now() + timedelta(minutes=1)
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "old", "refresh_token": "r"},
        expires_at=soon,
        refresh_at=soon,
    )

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks():
        assert credential_refresh(credential_id=credential.pk).kind == "refreshed"

    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    # In one transaction: the row locked (with its app, user and tenant), the secret's use
    # audited, the tenant's OAuth client, the new tokens, the refresh audited, the event and
    # the endpoints it goes to.
    kinds = [statement.split()[0] for statement in statements]
    assert kinds == ["SELECT", "INSERT", "SELECT", "UPDATE", "INSERT", "INSERT", "SELECT"], kinds
    assert "FOR UPDATE" in statements[0]
    update = statements[3]
    assert '"label"' not in update and '"identity"' not in update  # only what a refresh changes
    assert '"secret_ciphertext"' in update and '"last_refreshed_at"' in update
    credential.refresh_from_db()
    assert credential.expires_at > soon and credential.last_refreshed_at is not None


def test_re_verification_of_long_lived_credentials_is_spread_over_time(db, end_user, provider):
    app = factories.make_api_key_app(api_base_url=provider, reverify_interval_seconds=86400)
    credentials = [
        factories.make_credential(
            end_user=factories.make_end_user(tenant=end_user.tenant), app=app, status="pending"
        )
        for _ in range(12)
    ]
    before = timezone.now()

    for credential in credentials:
        assert credential_verify(credential_id=credential.pk).kind == "verified"

    due_times = [
        Credential.objects.get(pk=credential.pk).next_verification_at for credential in credentials
    ]
    offsets = [(due - before).total_seconds() for due in due_times]
    assert all(0.8 * 86400 - 5 <= offset <= 86400 + 5 for offset in offsets)
    assert max(offsets) - min(offsets) > 600  # spread, not all at the same moment


def test_a_token_without_a_refresh_token_is_looked_at_when_it_expires_and_then_marked_expired(
    db, end_user, httpserver, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/api/me").respond_with_json({"email": "ada@provider.test"})
    app = factories.make_oauth_app(api_base_url=httpserver.url_for("/api"))
    expires_at = timezone.now() + timedelta(hours=2)
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "only-an-access-token"},
        status="pending",
        expires_at=expires_at,
    )

    assert credential_verify(credential_id=credential.pk).kind == "verified"
    credential.refresh_from_db()
    assert credential.next_verification_at == expires_at

    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() - timedelta(1))
    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == "rejected"
    credential.refresh_from_db()
    assert credential.status == "expired"
    expired = Event.objects.get(type="credential.expired")
    assert expired.data["credential_id"] == str(credential.pk)
    assert len(httpserver.log) == 1  # the expired token was not sent to the provider


def test_a_token_is_due_for_refresh_within_its_apps_buffer_of_expiry(db, end_user):
    app = factories.make_oauth_app(refresh_buffer_seconds=600)
    credential = factories.make_credential(end_user=end_user, app=app)
    now = timezone.now()

    credential.expires_at = now + timedelta(minutes=11)
    assert not credential_refresh_due(credential, now=now)
    credential.expires_at = now + timedelta(minutes=9)
    assert credential_refresh_due(credential, now=now)
    credential.expires_at = None
    assert not credential_refresh_due(credential, now=now)


def test_retry_after_is_read_as_seconds_or_as_an_http_date(db, httpserver):
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    in_two_minutes = format_datetime(timezone.now() + timedelta(minutes=2), usegmt=True)
    httpserver.expect_ordered_request("/me").respond_with_data(
        "busy", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/me").respond_with_data(
        "busy", status=429, headers={"Retry-After": in_two_minutes}
    )
    httpserver.expect_ordered_request("/me").respond_with_data("down", status=502)

    seconds, date, missing = (
        verification_probe(app=app, secret={"api_key": "k"}) for _ in range(3)
    )

    assert (seconds.kind, seconds.retry_after) == ("unavailable", 7)
    assert date.kind == "unavailable" and 100 < date.retry_after <= 120
    assert (missing.kind, missing.retry_after) == ("unavailable", None)


def test_without_a_broker_an_unavailable_provider_leaves_the_credential_pending_for_the_sweep(
    db, end_user, httpserver, settings, django_capture_on_commit_callbacks
):
    # The embedded default: no Redis, tasks run in-process and a retry cannot wait.
    assert settings.CELERY_TASK_ALWAYS_EAGER
    httpserver.expect_request("/me").respond_with_data("down", status=503)
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": "key-1"}, status="pending"
    )

    with django_capture_on_commit_callbacks(execute=True):
        verification_enqueue(credential_id=credential.pk)

    credential.refresh_from_db()
    assert credential.status == "pending"
    assert credential.verification_attempts == 1
    assert len(httpserver.log) == 1
    assert not Event.objects.exists()
    settings.PORTAL_PENDING_AFTER_SECONDS = 0
    with django_capture_on_commit_callbacks() as callbacks:
        sweep_pending_credentials()
    assert [callback.args for callback in callbacks] == [
        ("integrations.tasks.verify_credentials", [str(credential.pk)])
    ]


def test_without_a_broker_a_queued_verification_runs_in_process_and_activates_the_credential(
    db, end_user, provider, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app(api_base_url=provider)
    credential = factories.make_credential(end_user=end_user, app=app, status="pending")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        verification_enqueue(credential_id=credential.pk)

    assert len(callbacks) == 1  # queued once the transaction commits, not before
    credential.refresh_from_db()
    assert (credential.status, credential.identity) == ("active", "ada@provider.test")
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.verified"]


def test_the_verify_task_changes_nothing_when_the_credential_is_gone(db):
    assert verify_credential.delay("00000000-0000-0000-0000-000000000000").get() == "skipped"


def test_an_expired_token_the_provider_cannot_refresh_now_is_not_judged_and_stays_active(
    db, end_user, httpserver
):
    httpserver.expect_request("/token", method="POST").respond_with_data("down", status=503)
    httpserver.expect_request("/api/me").respond_with_json({"error": "expired"}, status=401)
    app = factories.make_oauth_app(
        token_url=httpserver.url_for("/token"), api_base_url=httpserver.url_for("/api")
    )
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="cid", client_secret="cs")
    expired_at = timezone.now() - timedelta(minutes=1)
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "old", "refresh_token": "r"},
        expires_at=expired_at,
        refresh_at=expired_at - timedelta(minutes=15),
    )

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == "unavailable"
    credential.refresh_from_db()
    assert credential.status == "active"
    assert [request.path for request, _ in httpserver.log] == ["/token"]
