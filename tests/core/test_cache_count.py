"""The cache's counter (the API's rate limits): one round trip to Redis, else counted locally."""

from __future__ import annotations

import socket
import uuid

import pytest
from django.conf import settings
from redis.connection import AbstractConnection

from core.cache import FallbackRedisCache


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.redis
def test_a_count_is_one_round_trip_to_redis_and_its_counter_expires_with_the_window(monkeypatch):
    cache = FallbackRedisCache(settings.TEST_REDIS_URL, {})
    key = f"test-count-{uuid.uuid4().hex}"
    cache.count(key, 60)  # connects
    sent = []
    original = AbstractConnection.send_packed_command

    def send(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)

    counts = [cache.count(key, 60) for _ in range(3)]

    assert counts == [2, 3, 4]
    assert len(sent) == 3  # one write to the socket (a pipeline) per count
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_and_validate_key(key)) <= 60
    cache.delete(key)


def test_with_redis_unreachable_a_count_is_kept_in_the_process_and_never_fails():
    cache = FallbackRedisCache(f"redis://127.0.0.1:{_closed_port()}/0", {})

    assert [cache.count("test-count-down", 60) for _ in range(3)] == [1, 2, 3]
    assert cache.count("test-count-other", 60) == 1
