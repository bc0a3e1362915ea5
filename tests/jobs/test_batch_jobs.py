"""The sweeps' batch jobs: each credential of a batch is handled as its own job would handle it,
and one that fails leaves the others alone (against a real local provider, pytest-httpserver)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Response

from accounts.models import AuditLogEntry
from core.conf import conf
from integrations.models import Credential, Event
from integrations.services.oauth_clients import oauth_client_set
from integrations.services.sweeps import sweep_reverify_due
from integrations.tasks import refresh_credentials, verify_credential, verify_credentials
from tests import factories
from tests.api.test_proxy_transport import CountingUpstream

MINUTE = timedelta(minutes=1)


@pytest.fixture
def provider(httpserver):
    httpserver.expect_request("/me").respond_with_json({"email": "ada@provider.test"})
    httpserver.expect_request("/token").respond_with_json(
        {"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3600}
    )
    return httpserver.url_for("/")


def _key(end_user, app, **extra) -> Credential:
    return factories.make_credential(
        end_user=factories.make_end_user(tenant=end_user.tenant),
        app=app,
        secret={"api_key": "key-123"},
        **extra,
    )


def test_a_credential_that_fails_in_a_batch_does_not_stop_the_others(
    db, end_user, provider, caplog
):
    app = factories.make_api_key_app(api_base_url=provider)
    # An app whose verification request names no path: its probe raises.
    broken_app = factories.make_api_key_app(api_base_url=provider)
    broken_app.verification = {"identity": ["email"]}
    broken_app.save(update_fields=["verification"])
    first, broken, last = _key(end_user, app), _key(end_user, broken_app), _key(end_user, app)
    revoked = _key(end_user, app, status="revoked")

    outcomes = verify_credentials([str(first.pk), str(broken.pk), str(revoked.pk), str(last.pk)])

    assert outcomes == {"verified": 2, "error": 1, "skipped": 1}
    for credential in (first, last):
        credential.refresh_from_db()
        assert (credential.status, credential.identity) == ("active", "ada@provider.test")
    broken.refresh_from_db()
    assert broken.last_verified_at is None
    assert f"{broken.pk} failed; the sweep will queue it again." in caplog.text
    # Each verified credential has its own audit entries and its own event.
    assert AuditLogEntry.objects.filter(action="credential.verify", outcome="success").count() == 2
    assert sorted(Event.objects.values_list("data__credential_id", flat=True)) == sorted(
        [str(first.pk), str(last.pk)]
    )


def test_a_batch_skips_a_credential_whose_lease_a_later_sweep_took_and_verifies_the_rest(
    db, end_user, provider, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app(api_base_url=provider)
    now = timezone.now()
    credentials = [_key(end_user, app, next_verification_at=now - MINUTE) for _ in range(3)]
    with django_capture_on_commit_callbacks() as callbacks:
        sweep_reverify_due(now=now)
    ((ids, claim),) = [callback.args[1:] for callback in callbacks]
    # The batch waited past its lease: a later sweep queued the first credential again.
    later = now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS + 1)
    Credential.objects.filter(pk=credentials[0].pk).update(next_verification_at=later)

    outcomes = verify_credentials(ids, claim)

    assert outcomes == {"skipped": 1, "verified": 2}
    statuses = {
        str(c.pk): c.last_verified_at is not None
        for c in Credential.objects.filter(pk__in=[c.pk for c in credentials])
    }
    assert statuses == {
        str(credentials[0].pk): False,
        str(credentials[1].pk): True,
        str(credentials[2].pk): True,
    }


def test_a_batch_of_refreshes_refreshes_each_due_token_and_leaves_a_fresh_one(
    db, end_user, provider
):
    app = factories.make_oauth_app(api_base_url=provider, token_url=f"{provider}token")
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="id", client_secret="secret")
    soon, later = timezone.now() + MINUTE, timezone.now() + timedelta(hours=2)
    due, fresh = (
        factories.make_credential(
            end_user=factories.make_end_user(tenant=end_user.tenant),
            app=app,
            secret={"access_token": "old", "refresh_token": "r"},
            expires_at=expires_at,
            refresh_at=expires_at,
        )
        for expires_at in (soon, later)
    )

    outcomes = refresh_credentials(
        [str(due.pk), str(fresh.pk), "00000000-0000-0000-0000-000000000000"]
    )

    assert outcomes == {"refreshed": 1, "fresh": 1, "skipped": 1}
    due.refresh_from_db()
    assert due.last_refreshed_at is not None and due.expires_at > later - MINUTE * 61


def test_a_batch_and_the_jobs_after_it_reuse_one_connection_to_the_provider(db, end_user):
    provider = CountingUpstream()
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    try:
        app = factories.make_api_key_app(api_base_url=provider.base_url)
        first, second, third = (_key(end_user, app) for _ in range(3))

        assert verify_credentials([str(first.pk), str(second.pk)]) == {"verified": 2}
        assert verify_credential(str(third.pk)) == "verified"
    finally:
        provider.shutdown()
        provider.server_close()

    assert len(provider.requests) == 3
    assert provider.connections == 1


def test_behind_a_slow_provider_a_batch_leaves_the_rest_to_the_sweep_before_its_lease_ends(
    db, end_user, httpserver, settings, caplog
):
    # Lease 21.5 s, no spread, timeouts 5 + 15 s: a credential is started within 1.5 s of the
    # batch's start, or left (a later sweep would otherwise have queued it again meanwhile).
    # Each answer takes 1 s: one or two are verified, however loaded the machine.
    settings.PORTAL_PENDING_AFTER_SECONDS = 21.5
    settings.PORTAL_SWEEP_SPREAD_SECONDS = 0
    caplog.set_level("INFO", logger="integrations.tasks")

    def slow(request):
        threading.Event().wait(1.0)
        return Response('{"email": "ada@provider.test"}', content_type="application/json")

    httpserver.expect_request("/me").respond_with_handler(slow)
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    pending = [_key(end_user, app, status="pending") for _ in range(4)]

    outcomes = verify_credentials([str(credential.pk) for credential in pending])

    verified, left = outcomes.get("verified", 0), outcomes.get("left", 0)
    assert (verified + left, set(outcomes)) == (4, {"verified", "left"})
    assert 1 <= verified <= 2
    statuses = [Credential.objects.get(pk=c.pk).status for c in pending]
    assert statuses == ["active"] * verified + ["pending"] * left
    assert f"A batch left {left} credential(s) to the next sweep" in caplog.text
