"""The API's settings, one property and one default each (allauth's ``app_settings`` pattern).

Each is read from Django settings at the moment it is used, so ``override_settings`` in tests
and a restart in production both take effect.
"""

from __future__ import annotations

from django.conf import settings


class ApiSettings:
    @property
    def RATE_LIMIT(self) -> str:
        """Requests per API key and period: ``"<count>/<s|m|h|d>"``, e.g. ``"1000/m"``."""
        return getattr(settings, "PORTAL_API_RATE_LIMIT", "1000/m")

    @property
    def IDEMPOTENCY_TTL_SECONDS(self) -> int:
        """How long a stored response answers a repeated ``Idempotency-Key``."""
        return int(getattr(settings, "PORTAL_API_IDEMPOTENCY_TTL", 24 * 3600))

    @property
    def IDEMPOTENCY_LOCK_SECONDS(self) -> int:
        """After this long, a key whose first request never finished may be used again."""
        return int(getattr(settings, "PORTAL_API_IDEMPOTENCY_LOCK_SECONDS", 120))

    @property
    def CREDENTIAL_VERIFY_WAIT_SECONDS(self) -> float:
        """How long ``POST /credentials`` waits for verification before answering pending."""
        return float(getattr(settings, "PORTAL_API_CREDENTIAL_VERIFY_WAIT", 10))

    @property
    def PROXY_CONNECT_TIMEOUT(self) -> float:
        return float(getattr(settings, "PORTAL_PROXY_CONNECT_TIMEOUT", 5))

    @property
    def PROXY_READ_TIMEOUT(self) -> float:
        """Seconds the upstream may take to answer, and at most between two chunks of it."""
        return float(getattr(settings, "PORTAL_PROXY_READ_TIMEOUT", 30))

    @property
    def PROXY_MAX_RESPONSE_BYTES(self) -> int:
        """A larger upstream response is refused with 502 ``upstream_response_too_large``."""
        return int(getattr(settings, "PORTAL_PROXY_MAX_RESPONSE_BYTES", 10 * 1024 * 1024))

    @property
    def PROXY_MAX_REDIRECTS(self) -> int:
        """Redirects followed while they stay inside the app's base URL."""
        return int(getattr(settings, "PORTAL_PROXY_MAX_REDIRECTS", 3))


app_settings = ApiSettings()
