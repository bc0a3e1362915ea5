"""Health endpoints for load balancers and orchestrators, answered before any other middleware.

- ``/healthz/live`` (liveness): the process answers; it checks nothing else, so a restart is
  only ever asked for a process that cannot answer at all.
- ``/healthz/ready`` (readiness): PostgreSQL (or SQLite) answers, Redis answers (when
  configured), every migration is applied, the vault's keyring loads, and beat ran a sweep
  recently (when jobs run on workers). 200 when all hold; otherwise 503, and the JSON body
  names each check that failed. It also shows the cache's fallback counters.
  ``?checks=database,migrations,keyring`` runs only those: a load balancer that should keep
  sending traffic while Redis is down (the portal degrades, it does not fail) asks for these.

They are answered by ``HealthCheckMiddleware``, first in the chain: a probe by IP address is
not refused by ``ALLOWED_HOSTS``, is not redirected to HTTPS, and opens no session. No check
puts a secret, a URL or a password in the body: each failure is named by its kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.cache import FallbackRedisCache, cache_fallback_stats
from core.conf import conf
from core.vault import VaultError, get_keyring

LIVE_PATH = "/healthz/live"
READY_PATH = "/healthz/ready"
LAST_SWEEP_KEY = "portal:health:last-sweep"

Check = dict[str, Any]


def beat_sweep_record() -> None:
    """Note that a beat sweep ran now (the sweeps call it; readiness reads it)."""
    cache.set(LAST_SWEEP_KEY, time.time(), timeout=None)


def _failure(kind: str, exc: BaseException | None = None) -> Check:
    return {"ok": False, "error": kind + (f" ({type(exc).__name__})" if exc else "")}


def check_database() -> Check:
    connection = connections[DEFAULT_DB_ALIAS]
    for attempt in (1, 2):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # any failure means not ready
            if attempt == 1 and not connection.in_atomic_block:
                # A connection PostgreSQL ended (a restart): ask once more on a new one.
                connection.close()
                continue
            return _failure("unreachable", exc)
        return {"ok": True}
    return _failure("unreachable")


def check_redis() -> Check:
    backend = caches["default"]
    if not isinstance(backend, FallbackRedisCache):
        return {"ok": True, "configured": False}
    try:
        backend.ping()
    except Exception as exc:
        return _failure("unreachable", exc)
    return {"ok": True, "configured": True}


_migrations_applied = False


def check_migrations() -> Check:
    global _migrations_applied
    if _migrations_applied:
        # Migrations are not unapplied under a running process: checked until they hold.
        return {"ok": True}
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return _failure("cannot read the migration state", exc)
    if pending:
        return {"ok": False, "error": f"{len(pending)} migration(s) not applied"}
    _migrations_applied = True
    return {"ok": True}


def check_keyring() -> Check:
    try:
        keyring = get_keyring()
    except VaultError as exc:
        return _failure("the encryption keyring does not load", exc)
    return {"ok": True, "keys": len(keyring.keys)}


def check_beat() -> Check:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return {"ok": True, "configured": False}
    try:
        last = cache.get(LAST_SWEEP_KEY)
    except Exception as exc:
        return _failure("cannot read the last sweep", exc)
    if last is None:
        return {"ok": False, "error": "no sweep recorded: is celery beat running?"}
    age = time.time() - float(last)
    check: Check = {
        "ok": age <= conf.HEALTH_SWEEP_MAX_AGE_SECONDS,
        "last_sweep_at": datetime.fromtimestamp(float(last), tz=UTC).isoformat(),
        "age_seconds": round(age, 1),
    }
    if not check["ok"]:
        check["error"] = "no sweep for too long: is celery beat running?"
    return check


READINESS_CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "redis": check_redis,
    "migrations": check_migrations,
    "keyring": check_keyring,
    "beat": check_beat,
}


def readiness(names: list[str] | None = None) -> tuple[bool, dict[str, Any]]:
    """Run the named checks (all by default); ready when every one of them holds."""
    checks = {name: READINESS_CHECKS[name]() for name in names or READINESS_CHECKS}
    ready = all(check["ok"] for check in checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "failing": [name for name, check in checks.items() if not check["ok"]],
        "checks": checks,
        "cache_fallback": cache_fallback_stats(),
    }
    return ready, body


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers the two health paths itself (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == LIVE_PATH:
            return _no_store(JsonResponse({"status": "alive"}))
        if request.path_info == READY_PATH:
            names = [name for name in request.GET.get("checks", "").split(",") if name]
            unknown = sorted(set(names) - set(READINESS_CHECKS))
            if unknown:
                return _no_store(
                    JsonResponse(
                        {
                            "status": "bad_request",
                            "error": f"Unknown check(s) {', '.join(unknown)}; known: "
                            + ", ".join(READINESS_CHECKS),
                        },
                        status=400,
                    )
                )
            ready, body = readiness(names)
            return _no_store(JsonResponse(body, status=200 if ready else 503))
        return self.get_response(request)
