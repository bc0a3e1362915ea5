"""Fixtures of the background-job tests: a real Celery worker on Redis, the sandbox provider
under ``live_server``, and short backoffs (set here, never in the production defaults)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import OperationalError, connection, connections
from kombu import pools as kombu_pools

from integrations.services.oauth_clients import oauth_client_set
from portal.celery import app as celery_app
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH, sandbox_catalog_apps_ensure
from sandbox.services import sandbox_application_ensure, sandbox_seed
from tests import factories
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

# Kombu's Redis transport keeps the default queue and its unacknowledged messages under these.
BROKER_KEYS = ("celery", "unacked", "unacked_index", "unacked_mutex")
DEAD_BROKER_URL = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _short_backoffs(settings):
    settings.PORTAL_VERIFY_RETRY_BASE_SECONDS = 0.2
    settings.PORTAL_VERIFY_RETRY_MAX_SECONDS = 2
    settings.PORTAL_REFRESH_RETRY_BASE_SECONDS = 0.2
    settings.PORTAL_REFRESH_RETRY_MAX_SECONDS = 2
    settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS = 0.2
    settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS = 2
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 2


def wait_until(condition: Callable[[], object], *, timeout: float = 20, what: str = "") -> object:
    """Poll ``condition`` until it is truthy; the worker runs in other threads."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except OperationalError as exc:
            # SQLite's shared in-memory database (make test without CI) refuses a read while
            # the worker's thread writes the same table, at once and without waiting: not yet.
            if connection.vendor != "sqlite" or "locked" not in str(exc):
                raise
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what or condition}.")
        time.sleep(0.05)


def _use_broker(url: str) -> None:
    # Drop the cached connection and producer pools so the next publish uses ``url``.
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.broker_url = url


def _close_db_connections(**_: object) -> None:
    # The worker's threads open their own connections; close them after each task so the
    # test database can be flushed and dropped.
    connections.close_all()


@dataclass
class Broker:
    """The Celery app pointed at the test Redis, tasks really queued (not eager)."""

    url: str

    def down(self) -> None:
        _use_broker(DEAD_BROKER_URL)

    def up(self) -> None:
        _use_broker(self.url)

    @contextmanager
    def worker(self, *, pool: str = "solo", concurrency: int = 1) -> Iterator[None]:
        task_postrun.connect(_close_db_connections, weak=False)
        try:
            with start_worker(
                celery_app,
                pool=pool,
                concurrency=concurrency,
                perform_ping_check=False,
                shutdown_timeout=30,
                loglevel="WARNING",
            ):
                yield
        finally:
            task_postrun.disconnect(_close_db_connections)


@pytest.fixture
def broker(settings, transactional_db) -> Iterator[Broker]:
    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    client.delete(*BROKER_KEYS)
    saved = {
        key: celery_app.conf[key]
        for key in ("broker_url", "task_always_eager", "worker_hijack_root_logger")
    }
    celery_app.conf.task_always_eager = False
    celery_app.conf.worker_hijack_root_logger = False
    _use_broker(settings.TEST_REDIS_URL)
    try:
        yield Broker(url=settings.TEST_REDIS_URL)
    finally:
        _use_broker(saved.pop("broker_url"))
        celery_app.conf.update(saved)
        client.delete(*BROKER_KEYS)
        client.close()


# The sandbox provider, served by live_server.


@pytest.fixture
def sandbox_apps(live_server):
    return sandbox_catalog_apps_ensure(base_url=live_server.url)


@pytest.fixture
def sandbox_accounts(transactional_db):
    return {account.email: account for account in sandbox_seed()}


@pytest.fixture
def alice(sandbox_accounts):
    return sandbox_accounts["alice@sandbox.test"]


@pytest.fixture
def api_key_app(sandbox_apps):
    return sandbox_apps[SANDBOX_API_KEY]


@pytest.fixture
def oauth_app(sandbox_apps, tenant):
    """The sandbox's OAuth2 app with the tenant's client registered at the sandbox."""
    sandbox_application_ensure(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
    )
    app = sandbox_apps[SANDBOX_OAUTH]
    oauth_client_set(tenant=tenant, app=app, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    return app


@pytest.fixture
def webhook_endpoint(tenant, httpserver):
    """A tenant endpoint pointing at a real local receiver; returns (endpoint, secret)."""
    from integrations.models import WebhookEndpoint
    from integrations.services.webhooks import webhook_endpoint_secret_rotate

    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=httpserver.url_for("/hook"))
    return endpoint, webhook_endpoint_secret_rotate(endpoint=endpoint)


@pytest.fixture
def make_app(tenant):
    """A tenant's API-key app whose API is the local test provider (pytest-httpserver)."""

    def make(base_url: str, **extra):
        return factories.make_api_key_app(tenant=tenant, api_base_url=base_url, **extra)

    return make
