"""A worker killed in the middle of a re-verification: the row's lease, renewed by the job when
it started, runs out; the next sweep queues the row again and a new worker verifies it. The
timings are shortened here; ``test_the_defaults_recover_within_two_minutes`` checks the
production defaults add up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from werkzeug import Response

from core.conf import conf
from integrations.models import Credential
from integrations.services.sweeps import reverify_claim_take, sweep_reverify_due
from integrations.tasks import verify_credential
from portal.celery import SWEEP_INTERVAL_SECONDS
from tests import factories
from tests.api.conftest import key_app_on
from tests.faults.conftest import celery_worker, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


def _worker_process(settings, broker_url: str) -> subprocess.Popen:
    """A real ``celery worker`` process on the test database and broker (killable)."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": broker_url,
        "PORTAL_ENCRYPTION_KEYS": settings.PORTAL_ENCRYPTION_KEYS,
        "PORTAL_REVERIFY_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-P", "solo"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _due_credential(end_user, base_url: str) -> Credential:
    app = key_app_on(base_url, reverify_interval_seconds=3600)
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"api_key": "key_abcdefgh1"},
        identity="ada@example.com",
        next_verification_at=timezone.now() - timedelta(minutes=1),
        last_verified_at=timezone.now() - timedelta(days=1),
    )


@pytest.mark.django_db(transaction=True)
def test_a_re_verification_lost_with_a_killed_worker_is_done_after_its_lease_by_a_new_worker(
    redis_everywhere, settings, httpserver, end_user
):
    settings.PORTAL_REVERIFY_LEASE_SECONDS = LEASE_SECONDS
    settings.PORTAL_SWEEP_SPREAD_SECONDS = 0
    reached, release = threading.Event(), threading.Event()
    calls = []

    def provider(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            # The first worker's call: hold it until the worker is dead.
            reached.set()
            release.wait(60)
        return Response('{"email": "ada@example.com"}', content_type="application/json")

    httpserver.expect_request("/me").respond_with_handler(provider)
    credential = _due_credential(end_user, httpserver.url_for("/"))
    before = credential.last_verified_at

    doomed = _worker_process(settings, redis_everywhere.url)
    try:
        assert sweep_reverify_due().queued == 1
        assert reached.wait(90), "the first worker never called the provider"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        release.set()

    credential.refresh_from_db()
    assert credential.last_verified_at == before
    # The job renewed the lease when it started: the sweep leaves the row alone until it ends.
    assert sweep_reverify_due().queued == 0

    with celery_worker():
        wait_until(
            lambda: (
                Credential.objects.get(pk=credential.pk).verification_leased_until <= timezone.now()
            ),
            timeout=LEASE_SECONDS + 10,
            what="the dead job's lease to run out",
        )
        assert sweep_reverify_due().queued == 1
        wait_until(
            lambda: Credential.objects.get(pk=credential.pk).last_verified_at != before,
            what="the new worker to verify the credential",
        )

    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.next_verification_at > timezone.now() + timedelta(minutes=30)
    assert len(calls) == 2


def test_a_job_that_waited_past_its_lease_skips_itself_and_never_calls_the_provider(
    end_user, httpserver, settings, db
):
    settings.PORTAL_SWEEP_SPREAD_SECONDS = 0
    credential = _due_credential(end_user, httpserver.url_for("/"))
    now = timezone.now()
    sweep_reverify_due(now=now)
    stale = (now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)).isoformat()
    # A later sweep (the first job waited too long in the queue) queues the row again.
    sweep_reverify_due(now=now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS + 1))

    assert reverify_claim_take(credential_id=credential.pk, claim=stale) is None
    assert verify_credential(str(credential.pk), stale) == "skipped"
    assert httpserver.log == []


def test_the_defaults_recover_within_two_minutes():
    """Worst case after a worker dies mid-job: the lease it took runs out, the next sweep finds
    the row, its job starts within the spread, and the provider answers within its timeouts."""
    connect_timeout, read_timeout = conf.OUTBOUND_TIMEOUT
    worst = (
        conf.REVERIFY_LEASE_SECONDS
        + SWEEP_INTERVAL_SECONDS
        + conf.SWEEP_SPREAD_SECONDS
        + connect_timeout
        + read_timeout
    )
    assert worst <= 120
    for lease in (conf.REFRESH_LEASE_SECONDS, conf.WEBHOOK_LEASE_SECONDS):
        assert lease + SWEEP_INTERVAL_SECONDS + conf.SWEEP_SPREAD_SECONDS < 120
    assert conf.PENDING_AFTER_SECONDS + SWEEP_INTERVAL_SECONDS < 120
    # A job's lease covers its longest run (a refresh, then the probe), so no duplicates.
    assert 2 * (connect_timeout + read_timeout) < conf.REVERIFY_LEASE_SECONDS
