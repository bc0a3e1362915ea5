"""The worker process: its pool, and database connections kept between jobs."""

from __future__ import annotations

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.conf import settings
from django.db import connection

from integrations.tasks import verify_credential
from portal.celery import WorkerFixup
from portal.celery import app as celery_app

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def kept_connection(transactional_db, monkeypatch):
    """This thread's connection, opened as a worker's is: kept for CONN_MAX_AGE seconds."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    connection.ensure_connection()
    yield connection
    connection.close()


def _run_job(fixup: DjangoWorkerFixup) -> int:
    """What the worker does around a job, with one query in it: the backend that answered."""
    fixup.on_task_prerun(sender=verify_credential)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    fixup.on_task_postrun(sender=verify_credential)
    return pid


def test_jobs_reuse_the_threads_database_connection(kept_connection):
    fixup = WorkerFixup(celery_app)

    assert len({_run_job(fixup) for _ in range(3)}) == 1
    assert kept_connection.connection is not None


def test_celerys_own_fixup_would_open_a_connection_per_job(kept_connection):
    # Why portal/celery.py replaces it: it closes the connection after every task.
    fixup = DjangoWorkerFixup(celery_app)

    assert len({_run_job(fixup) for _ in range(3)}) == 3


def test_a_broken_connection_is_replaced_before_the_next_job(kept_connection):
    fixup = WorkerFixup(celery_app)
    first = _run_job(fixup)
    kept_connection.needs_rollback = False
    kept_connection.errors_occurred = True  # as after a query on a connection that died
    kept_connection.connection.close()

    assert _run_job(fixup) != first


def test_the_worker_uses_the_fixup_and_a_thread_pool_by_default():
    assert [type(fixup).__name__ for fixup in celery_app._fixups] == ["Fixup"]
    assert settings.CELERY_WORKER_POOL == "threads"
    assert celery_app.conf.worker_pool == "threads"
    assert celery_app.conf.worker_concurrency == settings.CELERY_WORKER_CONCURRENCY >= 8
