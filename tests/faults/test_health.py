"""The health endpoints: liveness checks only the process; readiness names what is wrong."""

from __future__ import annotations

import pytest
from django.db.migrations.recorder import MigrationRecorder

from core import health
from integrations.services.sweeps import sweep_pending_credentials

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_liveness_answers_for_any_host_without_redirecting_to_https(client, settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/healthz/live", HTTP_HOST="10.0.0.7")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert response["Cache-Control"] == "no-store"


def test_readiness_is_200_and_lists_every_check_when_all_hold(client):
    response = client.get("/healthz/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "redis", "migrations", "keyring", "beat"}
    assert body["checks"]["keyring"]["keys"] == 2
    assert {"degraded", "outages", "local_calls"} <= set(body["cache_fallback"])


def test_readiness_is_503_naming_redis_when_it_is_unreachable(client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.FallbackRedisCache", "LOCATION": DEAD_REDIS}
    }

    response = client.get("/healthz/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "redis" in body["failing"]
    assert body["checks"]["redis"]["error"].startswith("unreachable")
    assert "127.0.0.1:1" not in response.content.decode()


def test_readiness_is_503_naming_the_keyring_when_no_key_loads(client, settings):
    settings.PORTAL_ENCRYPTION_KEYS = ""
    settings.PORTAL_ENCRYPTION_KEYS_FILE = ""

    response = client.get("/healthz/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["keyring"]


def test_readiness_is_503_while_a_migration_is_not_applied(client, monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)
    MigrationRecorder.Migration.objects.filter(app="integrations").order_by("-id").first().delete()

    response = client.get("/healthz/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"]["error"] == "1 migration(s) not applied"


def test_readiness_with_workers_needs_a_recent_sweep_by_beat(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    before = client.get("/healthz/ready")
    assert before.status_code == 503
    assert before.json()["failing"] == ["beat"]

    sweep_pending_credentials()
    after = client.get("/healthz/ready")
    assert after.status_code == 200
    assert after.json()["checks"]["beat"]["age_seconds"] < 60

    settings.PORTAL_HEALTH_SWEEP_MAX_AGE_SECONDS = -1
    stale = client.get("/healthz/ready")
    assert stale.status_code == 503
    assert "beat" in stale.json()["checks"]["beat"]["error"]


def test_readiness_runs_only_the_checks_asked_for(client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.FallbackRedisCache", "LOCATION": DEAD_REDIS}
    }

    everything = client.get("/healthz/ready")
    without_redis = client.get("/healthz/ready?checks=database,migrations,keyring")
    unknown = client.get("/healthz/ready?checks=database,nonsense")

    assert everything.status_code == 503
    assert without_redis.status_code == 200
    assert set(without_redis.json()["checks"]) == {"database", "migrations", "keyring"}
    assert unknown.status_code == 400
    assert "nonsense" in unknown.json()["error"]
