"""Fixtures of the fault tests: a Redis of the test's own, started and stopped by the test, that
serves as the cache and as Celery's broker; a real Celery worker on it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections
from kombu import pools as kombu_pools

from portal.celery import app as celery_app
from tests.connect.helpers import build_world

REDIS_SERVER = "/usr/bin/redis-server"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _own_port(test_redis_url: str) -> int:
    """6400 + the test Redis database number (one per person and xdist worker), else any."""
    db = (urlsplit(test_redis_url).path.strip("/") or "0").split("/")[0]
    port = 6400 + int(db) if db.isdigit() else 0
    if port and _port_is_free(port):
        return port
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        return spare.getsockname()[1]


@dataclass
class OwnRedis:
    """A redis-server process on its own port, without persistence."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(settings) -> Iterator[OwnRedis]:
    server = OwnRedis(port=_own_port(settings.TEST_REDIS_URL))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_broker(url: str) -> None:
    # Drop the cached connection and producer pools so the next publish uses ``url``.
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.broker_url = url


@pytest.fixture
def redis_everywhere(settings, own_redis) -> Iterator[OwnRedis]:
    """The cache (the fallback backend, retrying Redis quickly) and the broker on own_redis."""
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.FallbackRedisCache",
            "LOCATION": own_redis.url,
            "OPTIONS": {"FALLBACK_RETRY_SECONDS": 0.2},
        }
    }
    saved = {
        key: celery_app.conf[key]
        for key in ("broker_url", "task_always_eager", "worker_hijack_root_logger")
    }
    celery_app.conf.task_always_eager = False
    celery_app.conf.worker_hijack_root_logger = False
    use_broker(own_redis.url)
    try:
        yield own_redis
    finally:
        use_broker(saved.pop("broker_url"))
        celery_app.conf.update(saved)


def _close_db_connections(**_: object) -> None:
    connections.close_all()


@contextmanager
def celery_worker() -> Iterator[None]:
    """A real Celery worker (threads of this process) on the current broker."""
    task_postrun.connect(_close_db_connections, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            shutdown_timeout=30,
            loglevel="WARNING",
        ):
            yield
    finally:
        task_postrun.disconnect(_close_db_connections)


def wait_until(condition, *, timeout: float = 20, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what or condition}.")
        time.sleep(0.05)


@pytest.fixture
def world(live_server, settings, transactional_db):
    """The modal's world: the sandbox provider at live_server (see tests/connect/helpers.py)."""
    settings.PORTAL_BASE_URL = live_server.url
    return build_world(live_server.url)
