"""The cache backend: Django's RedisCache that degrades to a per-process cache, never fails.

The API's rate limit and allauth's sign-in limits count in the cache. With Redis unreachable,
Django's ``RedisCache`` raises on every call, and the request that asked answers 500. This
backend answers from a local in-process ``LocMemCache`` instead: each process then counts on
its own (a limit of N per minute becomes at most N per minute per process) until Redis is back.

- Short socket timeouts (``socket_connect_timeout`` / ``socket_timeout``, 0.5 s unless OPTIONS
  say otherwise), so a Redis that hangs costs a request half a second, not a minute.
- After a failure, Redis is left alone for ``FALLBACK_RETRY_SECONDS`` (5 s unless OPTIONS say
  otherwise) and every call goes straight to the local cache; then the next call tries Redis
  again, and the first that succeeds ends the outage.
- A warning is logged when an outage starts and when it ends (not on every call), and
  ``cache_fallback_stats()`` counts them and the calls answered locally (the readiness body
  shows it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

REDIS_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_RETRY_SECONDS = 5.0


@dataclass
class FallbackStats:
    """What the fallback did in this process since it started."""

    degraded: bool = False
    outages: int = 0
    local_calls: int = 0
    last_error: str = ""
    degraded_since: float | None = None


_stats = FallbackStats()
_stats_lock = threading.Lock()


def cache_fallback_stats() -> dict[str, Any]:
    """A copy of this process's fallback counters (the readiness body and the tests read it)."""
    with _stats_lock:
        return asdict(_stats)


def cache_count_add_incr(backend: Any, key: str, timeout: int, version: int | None = None) -> int:
    """Add one to the counter ``key`` of a cache with no atomic count of its own (the local
    memory cache): created at 0 for ``timeout`` seconds when missing, then incremented."""
    backend.add(key, 0, timeout, version)
    try:
        return backend.incr(key, 1, version)
    except ValueError:  # expired between the two calls: this call starts the counter
        backend.set(key, 1, timeout, version)
        return 1


class FallbackRedisCache(RedisCache):
    """``RedisCache`` with short timeouts and a local fallback (see the module docstring)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        self._retry_seconds = float(options.pop("FALLBACK_RETRY_SECONDS", DEFAULT_RETRY_SECONDS))
        options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        super().__init__(server, {**params, "OPTIONS": options})
        self._local = LocMemCache(
            f"fallback-{id(self)}",
            {key: value for key, value in params.items() if key in ("TIMEOUT", "KEY_PREFIX")},
        )
        self._retry_at = 0.0
        self._counting_client = None

    def ping(self) -> bool:
        """Ask Redis itself, never the fallback (readiness): raises when it is unreachable."""
        return self._cache.get_client(write=True).ping()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._call_with(getattr(super(), name), name, *args, **kwargs)

    def _call_with(self, remote: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """``remote(*args)`` on Redis, or the local cache's ``name`` while Redis is down."""
        if time.monotonic() < self._retry_at:
            return self._locally(name, *args, **kwargs)
        try:
            result = remote(*args, **kwargs)
        except REDIS_DOWN_ERRORS as exc:
            self._retry_at = time.monotonic() + self._retry_seconds
            with _stats_lock:
                starting = not _stats.degraded
                _stats.degraded = True
                _stats.last_error = type(exc).__name__
                if starting:
                    _stats.outages += 1
                    _stats.degraded_since = time.time()
            if starting:
                logger.warning(
                    "Redis cache unreachable (%s): counting in this process until it is back.",
                    type(exc).__name__,
                )
            return self._locally(name, *args, **kwargs)
        if _stats.degraded:
            with _stats_lock:
                ended = _stats.degraded
                _stats.degraded = False
                _stats.degraded_since = None
            if ended:
                logger.warning("Redis cache reachable again: counting in Redis.")
        return result

    def _locally(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with _stats_lock:
            _stats.local_calls += 1
        # A method of our own (``_local_count``) where the local cache has none of that name.
        local = getattr(self, f"_local_{name}", None) or getattr(self._local, name)
        return local(*args, **kwargs)

    def count(self, key: str, timeout: int, version: int | None = None) -> int:
        """Add one to the counter ``key`` (created at 0 for ``timeout`` seconds when missing) and
        return it: one round trip to Redis (``SET NX EX`` and ``INCR`` pipelined), on a client
        kept for the process rather than built per call. The rate limits count with it."""
        return self._call_with(self._redis_count, "count", key, timeout, version)

    def _redis_count(self, key: str, timeout: int, version: int | None) -> int:
        key = self.make_and_validate_key(key, version=version)
        if self._counting_client is None:
            self._counting_client = self._cache.get_client(key, write=True)
        # MULTI/EXEC, still one round trip: the counter cannot expire between the two commands
        # (an INCR on an expired key would recreate it with no expiry).
        pipeline = self._counting_client.pipeline(transaction=True)
        pipeline.set(key, 0, ex=timeout, nx=True)
        pipeline.incr(key)
        return pipeline.execute()[1]

    def _local_count(self, key: str, timeout: int, version: int | None) -> int:
        return cache_count_add_incr(self._local, key, timeout, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._call("get", key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", key, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", key, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", key, version)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", keys, version)

    def clear(self):
        self._local.clear()
        return self._call("clear")
