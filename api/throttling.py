"""Rate limits per tenant API key (and per trigger URL), counted in the Django cache (Redis in
production).

A fixed window per key: the first request of a window creates its counter, each request adds
one atomically (``count`` of ``core.cache``: one pipelined round trip to Redis), so concurrent
workers share one count without a lock. Over the
limit, the answer is 429 with ``Retry-After`` set to the seconds left in the window. The rate
is ``PORTAL_API_RATE_LIMIT`` (default ``"1000/m"``), read on every request.

With Redis unreachable the cache backend (``core.cache.FallbackRedisCache``) counts in the
process instead, so the limit still holds per process and the request never fails for it.
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

from core.cache import cache_count_add_incr
from core.conf import conf

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"1000/m"`` → (1000, 60); ``"10/5s"`` → (10, 5)."""
    count, _, period = rate.partition("/")
    unit = period[-1:]
    multiplier = period[:-1] or "1"
    if unit not in PERIODS or not count.isdigit() or not multiplier.isdigit():
        raise ValueError(f"Invalid rate {rate!r}: use '<count>/<s|m|h|d>', e.g. '1000/m'.")
    return int(count), int(multiplier) * PERIODS[unit]


def rate_window_wait(bucket: str, rate: str) -> float | None:
    """Count one request against ``bucket`` at ``rate``: None while within it, else the seconds
    left in the window. ``bucket`` must never hold a secret (cache keys show up in Redis)."""
    limit, period = parse_rate(rate)
    now = time.time()
    key = f"{bucket}:{period}:{int(now // period)}"
    if hasattr(cache, "count"):
        count = cache.count(key, period + 1)  # one round trip (core.cache)
    else:
        count = cache_count_add_incr(cache, key, period + 1)
    if count <= limit:
        return None
    return max(1.0, math.ceil(period - now % period))


class TenantKeyRateThrottle(BaseThrottle):
    """Counts requests per API key (by its public prefix, never the secret part)."""

    cache_prefix = "api-throttle"

    def __init__(self, rate: str | None = None) -> None:
        self.fixed_rate = rate

    @property
    def rate(self) -> str:
        return self.fixed_rate or conf.API_RATE_LIMIT

    def allow_request(self, request: HttpRequest) -> bool:
        api_key = getattr(request, "auth", None)
        prefix = getattr(api_key, "prefix", None)
        if not prefix:
            return True
        return rate_window_wait(f"{self.cache_prefix}:{prefix}", self.rate) is None

    def wait(self) -> float | None:
        # Stateless (one throttle object serves every thread): the rest of the current window.
        _, period = parse_rate(self.rate)
        return max(1.0, math.ceil(period - time.time() % period))
