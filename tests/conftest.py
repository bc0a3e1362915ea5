"""Shared fixtures. With CI=true, tests needing PostgreSQL, Redis or the browser fail, not skip."""

from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from django.db import connection

from tests import factories

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = "/usr/bin/chromium"


def _missing(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true and {reason}: this test may not be skipped in CI.", pytrace=False)
    pytest.skip(reason)


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(settings.TEST_REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI=true, stop at once when PostgreSQL or Redis is missing: nothing may be skipped."""
    if not CI:
        return
    problems = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("the database is not PostgreSQL")
    if not _redis_reachable():
        problems.append(f"Redis is not reachable at {settings.TEST_REDIS_URL}")
    if not shutil.which(CHROMIUM):
        problems.append(f"{CHROMIUM} is missing (make test installs it as root)")
    if problems:
        pytest.exit("CI=true but " + "; ".join(problems) + ".", returncode=3)


@pytest.fixture(autouse=True)
def _requirements(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("the database is not PostgreSQL (set CI=true or DATABASE_URL)")
    if request.node.get_closest_marker("redis") and not _redis_reachable():
        _missing(f"Redis is not reachable at {settings.TEST_REDIS_URL}")
    if request.node.get_closest_marker("browser") and not shutil.which(CHROMIUM):
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits (allauth's, the API's) count in the cache: no test inherits another's."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tenant(db):
    return factories.make_tenant(name="Acme")


@pytest.fixture
def other_tenant(db):
    return factories.make_tenant(name="Globex")


@pytest.fixture
def end_user(tenant):
    return factories.make_end_user(tenant=tenant, external_id="user-1", email="ada@example.com")
