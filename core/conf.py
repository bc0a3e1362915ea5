"""The portal's own settings: one typed object, one property and one default per setting.

Each ``PORTAL_*`` setting is read when it is used, so ``override_settings`` in tests and a
restart in production both take effect. A value comes from the Django settings module when it
sets the name, otherwise from the environment variable of the same name, otherwise from the
default stated here (allauth's ``app_settings`` pattern). Nothing else reads ``PORTAL_*``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.conf import settings


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


class PortalSettings:
    def _get(self, name: str, default: Any, cast: Callable[[Any], Any] | None = None) -> Any:
        full = f"PORTAL_{name}"
        if hasattr(settings, full):
            value = getattr(settings, full)
        elif full in os.environ:
            value = os.environ[full]
            if cast is bool:
                return _env_bool(value)
        else:
            return default
        return cast(value) if cast is not None else value

    # The portal itself.
    @property
    def BASE_URL(self) -> str:
        """Where the portal is reached from browsers and providers, without a trailing slash."""
        return str(self._get("BASE_URL", "http://127.0.0.1:8000")).rstrip("/")

    @property
    def SANDBOX_ENABLED(self) -> bool:
        """Serve the built-in sandbox provider at /sandbox/ (the demo and the tests)."""
        return self._get("SANDBOX_ENABLED", False, bool)

    @property
    def ALLOW_PRIVATE_NETWORK(self) -> bool:
        """Let outbound requests reach loopback and private addresses (the demo, the tests)."""
        return self._get("ALLOW_PRIVATE_NETWORK", False, bool)

    @property
    def OUTBOUND_TIMEOUT(self) -> tuple[float, float]:
        """Connect and read timeouts of a request to a provider (verification, OAuth2)."""
        return (
            float(self._get("OUTBOUND_CONNECT_TIMEOUT", 5)),
            float(self._get("OUTBOUND_READ_TIMEOUT", 15)),
        )

    @property
    def ENCRYPTION_KEYS(self) -> str:
        """The vault's keyring: ``kid:base64key`` entries, newest (the encrypting one) first."""
        return str(self._get("ENCRYPTION_KEYS", "") or "")

    @property
    def ENCRYPTION_KEYS_FILE(self) -> str:
        """A file holding the keyring in the same format, when ENCRYPTION_KEYS is empty."""
        return str(self._get("ENCRYPTION_KEYS_FILE", "") or "")

    # The server API.
    @property
    def API_RATE_LIMIT(self) -> str:
        """Requests per API key and period: ``"<count>/<s|m|h|d>"``, e.g. ``"1000/m"``."""
        return str(self._get("API_RATE_LIMIT", "1000/m"))

    @property
    def TRIGGER_URL_RATE_LIMIT(self) -> str:
        """Calls per trigger URL, e.g. ``"60/m"``: a leaked or looping URL cannot flood the
        workers; over it, 429 with Retry-After and no run."""
        return str(self._get("TRIGGER_URL_RATE_LIMIT", "60/m"))

    @property
    def API_IDEMPOTENCY_TTL_SECONDS(self) -> int:
        """How long a stored response answers a repeated ``Idempotency-Key``."""
        return int(self._get("API_IDEMPOTENCY_TTL", 24 * 3600))

    @property
    def API_IDEMPOTENCY_LOCK_SECONDS(self) -> int:
        """After this long, a key whose first request never finished may be used again."""
        return int(self._get("API_IDEMPOTENCY_LOCK_SECONDS", 120))

    # The proxy.
    @property
    def PROXY_CONNECT_TIMEOUT(self) -> float:
        return float(self._get("PROXY_CONNECT_TIMEOUT", 5))

    @property
    def PROXY_READ_TIMEOUT(self) -> float:
        """Seconds the upstream may take to answer, and at most between two chunks of it."""
        return float(self._get("PROXY_READ_TIMEOUT", 30))

    @property
    def PROXY_MAX_RESPONSE_BYTES(self) -> int:
        """A larger upstream response is refused with 502 ``upstream_response_too_large``."""
        return int(self._get("PROXY_MAX_RESPONSE_BYTES", 10 * 1024 * 1024))

    @property
    def PROXY_MAX_REDIRECTS(self) -> int:
        """Redirects followed while they stay inside the app's base URL."""
        return int(self._get("PROXY_MAX_REDIRECTS", 3))

    # Verification: a provider that is down, busy (429) or slow is retried with backoff.
    @property
    def VERIFY_MAX_RETRIES(self) -> int:
        return int(self._get("VERIFY_MAX_RETRIES", 6))

    @property
    def VERIFY_RETRY_BASE_SECONDS(self) -> float:
        return float(self._get("VERIFY_RETRY_BASE_SECONDS", 30))

    @property
    def VERIFY_RETRY_MAX_SECONDS(self) -> float:
        """Also the most a ``Retry-After`` is honoured for; longer waits go to the sweeps."""
        return float(self._get("VERIFY_RETRY_MAX_SECONDS", 900))

    @property
    def REVERIFY_JITTER(self) -> float:
        """Re-verification is due after the app's interval shortened by up to this fraction,
        so credentials connected together do not all hit the provider together."""
        return float(self._get("REVERIFY_JITTER", 0.2))

    # Refresh: transient provider errors are retried; the sweep catches what the retries miss.
    @property
    def REFRESH_MAX_RETRIES(self) -> int:
        return int(self._get("REFRESH_MAX_RETRIES", 5))

    @property
    def REFRESH_RETRY_BASE_SECONDS(self) -> float:
        return float(self._get("REFRESH_RETRY_BASE_SECONDS", 15))

    @property
    def REFRESH_RETRY_MAX_SECONDS(self) -> float:
        return float(self._get("REFRESH_RETRY_MAX_SECONDS", 300))

    # Sweeps: what is due is claimed in batches and leased, so the next sweep skips it while
    # its job runs. A job renews its lease when it starts and before each retry; a job lost with
    # its worker does not, so its row is queued again by the first sweep (every 30 s) after the
    # lease: lease + 30 s + spread + the job itself, under two minutes with these defaults.
    @property
    def SWEEP_BATCH_SIZE(self) -> int:
        return int(self._get("SWEEP_BATCH_SIZE", 500))

    @property
    def SWEEP_MAX_BATCHES(self) -> int:
        """At most this many batches per sweep run; the rest waits for the next run."""
        return int(self._get("SWEEP_MAX_BATCHES", 20))

    @property
    def SWEEP_SPREAD_SECONDS(self) -> float:
        """A sweep's jobs start at random within this many seconds, not all at once."""
        return float(self._get("SWEEP_SPREAD_SECONDS", 10))

    @property
    def REFRESH_LEASE_SECONDS(self) -> float:
        return float(self._get("REFRESH_LEASE_SECONDS", 45))

    @property
    def REVERIFY_LEASE_SECONDS(self) -> float:
        return float(self._get("REVERIFY_LEASE_SECONDS", 45))

    @property
    def PENDING_AFTER_SECONDS(self) -> float:
        """A credential pending this long lost its verification (broker down, worker lost)."""
        return float(self._get("PENDING_AFTER_SECONDS", 45))

    @property
    def WEBHOOK_LEASE_SECONDS(self) -> float:
        return float(self._get("WEBHOOK_LEASE_SECONDS", 45))

    # Health.
    @property
    def HEALTH_SWEEP_MAX_AGE_SECONDS(self) -> float:
        """Readiness fails when beat's last sweep is older than this (sweeps run every 30 s)."""
        return float(self._get("HEALTH_SWEEP_MAX_AGE_SECONDS", 180))

    # Webhooks.
    @property
    def WEBHOOK_TIMEOUT_SECONDS(self) -> float:
        return float(self._get("WEBHOOK_TIMEOUT_SECONDS", 10))

    @property
    def WEBHOOK_RETRY_BASE_SECONDS(self) -> float:
        return float(self._get("WEBHOOK_RETRY_BASE_SECONDS", 15))

    @property
    def WEBHOOK_RETRY_MAX_SECONDS(self) -> float:
        return float(self._get("WEBHOOK_RETRY_MAX_SECONDS", 4 * 3600))

    @property
    def WEBHOOK_RETRY_WINDOW_SECONDS(self) -> float:
        """A delivery is retried for this long after its first attempt, then marked failed."""
        return float(self._get("WEBHOOK_RETRY_WINDOW_SECONDS", 24 * 3600))

    # Workflows.
    @property
    def WORKFLOW_RUN_TIMEOUT_SECONDS(self) -> float:
        """A run's time limit: no step starts after it, and each step waits at most what is left."""
        return float(self._get("WORKFLOW_RUN_TIMEOUT_SECONDS", 30))

    @property
    def WORKFLOW_RENDER_MAX_CHARS(self) -> int:
        """How many characters a run's templates (every step's query, headers and body, and
        the response) may render to in all; past it the run fails ``rendered_too_large``."""
        return int(self._get("WORKFLOW_RENDER_MAX_CHARS", 4 * 1024 * 1024))

    @property
    def WORKFLOW_RUN_STRANDED_AFTER_SECONDS(self) -> float:
        """A run still running this long after it started lost its worker or web process (the
        time limit, plus a token refresh and a margin): the recovery sweep marks it failed."""
        return float(
            self._get("WORKFLOW_RUN_STRANDED_AFTER_SECONDS", self.WORKFLOW_RUN_TIMEOUT_SECONDS + 60)
        )

    @property
    def WORKFLOW_STEP_MAX_RESPONSE_BYTES(self) -> int:
        """A step whose answer is larger fails (``upstream_response_too_large``)."""
        return int(self._get("WORKFLOW_STEP_MAX_RESPONSE_BYTES", 1024 * 1024))

    @property
    def WORKFLOW_RUN_EXCERPT_CHARS(self) -> int:
        """How much of each step's answer the run history keeps (secrets redacted)."""
        return int(self._get("WORKFLOW_RUN_EXCERPT_CHARS", 2000))

    @property
    def WORKFLOW_RUN_RETENTION_DAYS(self) -> float:
        """Runs older than this are purged (in batches, by a beat job)."""
        return float(self._get("WORKFLOW_RUN_RETENTION_DAYS", 30))

    @property
    def WORKFLOW_RUN_PURGE_BATCH_SIZE(self) -> int:
        return int(self._get("WORKFLOW_RUN_PURGE_BATCH_SIZE", 1000))

    # Tasks: a retry further away than this is left to the sweeps rather than held by a worker
    # (Redis redelivers messages unacknowledged for longer than its visibility timeout).
    @property
    def TASK_MAX_COUNTDOWN_SECONDS(self) -> float:
        return float(self._get("TASK_MAX_COUNTDOWN_SECONDS", 900))


conf = PortalSettings()
