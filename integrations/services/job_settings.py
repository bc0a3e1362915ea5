"""The background jobs' tunables: one typed object, each value a Django setting with a default.

Production keeps the defaults; a deployer may set any ``PORTAL_…`` name below in the settings,
and the tests shorten backoffs with ``override_settings`` instead of changing the defaults.
"""

from __future__ import annotations

import random

from django.conf import settings


class JobSettings:
    def _get(self, name: str, default: float) -> float:
        return getattr(settings, f"PORTAL_{name}", default)

    # Verification: a provider that is down, busy (429) or slow is retried with backoff.
    @property
    def VERIFY_MAX_RETRIES(self) -> int:
        return int(self._get("VERIFY_MAX_RETRIES", 6))

    @property
    def VERIFY_RETRY_BASE_SECONDS(self) -> float:
        return self._get("VERIFY_RETRY_BASE_SECONDS", 30)

    @property
    def VERIFY_RETRY_MAX_SECONDS(self) -> float:
        """Also the most a ``Retry-After`` is honoured for; longer waits go to the sweeps."""
        return self._get("VERIFY_RETRY_MAX_SECONDS", 900)

    @property
    def REVERIFY_JITTER(self) -> float:
        """Re-verification is due after the app's interval shortened by up to this fraction,
        so credentials connected together do not all hit the provider together."""
        return self._get("REVERIFY_JITTER", 0.2)

    # Refresh: transient provider errors are retried; the sweep catches what the retries miss.
    @property
    def REFRESH_MAX_RETRIES(self) -> int:
        return int(self._get("REFRESH_MAX_RETRIES", 5))

    @property
    def REFRESH_RETRY_BASE_SECONDS(self) -> float:
        return self._get("REFRESH_RETRY_BASE_SECONDS", 15)

    @property
    def REFRESH_RETRY_MAX_SECONDS(self) -> float:
        return self._get("REFRESH_RETRY_MAX_SECONDS", 300)

    # Sweeps: what is due is claimed in batches and leased, so the next sweep skips it while
    # its task (and the task's retries) run.
    @property
    def SWEEP_BATCH_SIZE(self) -> int:
        return int(self._get("SWEEP_BATCH_SIZE", 500))

    @property
    def SWEEP_MAX_BATCHES(self) -> int:
        """At most this many batches per sweep run; the rest waits for the next run."""
        return int(self._get("SWEEP_MAX_BATCHES", 20))

    @property
    def REFRESH_LEASE_SECONDS(self) -> float:
        return self._get("REFRESH_LEASE_SECONDS", 600)

    @property
    def REVERIFY_LEASE_SECONDS(self) -> float:
        return self._get("REVERIFY_LEASE_SECONDS", 3600)

    @property
    def PENDING_AFTER_SECONDS(self) -> float:
        """A credential pending this long lost its verification (broker down, worker lost)."""
        return self._get("PENDING_AFTER_SECONDS", 600)

    @property
    def WEBHOOK_LEASE_SECONDS(self) -> float:
        return self._get("WEBHOOK_LEASE_SECONDS", 300)

    # Webhooks.
    @property
    def WEBHOOK_TIMEOUT_SECONDS(self) -> float:
        return self._get("WEBHOOK_TIMEOUT_SECONDS", 10)

    @property
    def WEBHOOK_RETRY_BASE_SECONDS(self) -> float:
        return self._get("WEBHOOK_RETRY_BASE_SECONDS", 15)

    @property
    def WEBHOOK_RETRY_MAX_SECONDS(self) -> float:
        return self._get("WEBHOOK_RETRY_MAX_SECONDS", 4 * 3600)

    @property
    def WEBHOOK_RETRY_WINDOW_SECONDS(self) -> float:
        """A delivery is retried for this long after its first attempt, then marked failed."""
        return self._get("WEBHOOK_RETRY_WINDOW_SECONDS", 24 * 3600)

    # Tasks: a retry further away than this is left to the sweeps rather than held by a worker
    # (Redis redelivers messages unacknowledged for longer than its visibility timeout).
    @property
    def TASK_MAX_COUNTDOWN_SECONDS(self) -> float:
        return self._get("TASK_MAX_COUNTDOWN_SECONDS", 900)


job_settings = JobSettings()


def backoff_seconds(*, attempt: int, base: float, maximum: float, jitter: float = 0.1) -> float:
    """Exponential backoff for the ``attempt``-th retry (1, 2, …), with a little jitter."""
    delay = min(base * 2 ** max(attempt - 1, 0), maximum)
    return max(0.0, delay * random.uniform(1 - jitter, 1 + jitter))  # noqa: S311
