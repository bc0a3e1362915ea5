"""Verifications per second of one worker against a local provider.

    .venv/bin/python benchmarks/verification_throughput.py [--credentials 2000] [--latency-ms 0]

A local HTTP server plays the provider (answering the verification request with an identity,
after ``--latency-ms``). N API-key credentials, sealed by the vault as the product stores them,
are verified twice in the benchmark database (BENCH_DATABASE_URL, see benchmarks/_setup.py):

1. by one real Celery worker (solo pool, concurrency 1) consuming from Redis (REDIS_URL,
   default redis://127.0.0.1:6379/13): every job queued, taken, verified, recorded;
2. by the verification service called in a loop, the same work without the broker,
   which bounds what one worker process can do.

Each verification opens the secret, calls the provider with a timeout, and writes the result,
an audit entry and a ``credential.verified`` event in one transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _setup import django_setup


class Provider(BaseHTTPRequestHandler):
    latency = 0.0

    def do_GET(self):
        if self.latency:
            time.sleep(self.latency)
        body = json.dumps({"email": "someone@provider.test"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _credentials(n: int, base_url: str) -> list[str]:
    from accounts.models import EndUser, Tenant
    from core.vault import seal_secret
    from integrations.models import App, Credential

    Credential.objects.filter(tenant__slug="bench-verify").delete()
    tenant, _ = Tenant.objects.get_or_create(slug="bench-verify", defaults={"name": "Bench"})
    app, _ = App.objects.update_or_create(
        tenant=tenant,
        slug="bench-provider",
        defaults={
            "name": "Bench provider",
            "auth_type": App.AuthType.API_KEY,
            "fields": [{"name": "api_key", "label": "API key", "secret": True}],
            "auth_scheme": {"in": "header", "name": "X-API-Key", "template": "{api_key}"},
            "api_base_url": base_url,
            "verification": {"path": "/me", "identity": ["email"]},
        },
    )
    ids = []
    for number in range(n):
        # One end user each: one identity is connected once per user and app.
        end_user, _ = EndUser.objects.get_or_create(tenant=tenant, external_id=f"user-{number}")
        credential = Credential(tenant=tenant, end_user=end_user, app=app)
        seal_secret(credential, {"api_key": f"key-{number:08d}"})
        credential.save()
        ids.append(str(credential.pk))
    return ids


def _reset(ids: list[str]) -> None:
    from integrations.models import Credential

    Credential.objects.filter(pk__in=ids).update(status="pending", identity="")


def _active(ids: list[str]) -> int:
    from integrations.models import Credential

    return Credential.objects.filter(pk__in=ids, status="active").count()


def _with_worker(ids: list[str], redis_url: str) -> float:
    import redis
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import close_old_connections
    from kombu import pools

    from integrations.tasks import verify_credential
    from portal.celery import app as celery_app

    client = redis.Redis.from_url(redis_url)
    client.delete("celery", "unacked", "unacked_index")
    pools.reset()
    celery_app.conf.update(
        broker_url=redis_url, task_always_eager=False, worker_hijack_root_logger=False
    )
    done = threading.Event()
    finished: list[int] = []

    def count(sender=None, **_):
        close_old_connections()
        if getattr(sender, "name", "") == verify_credential.name:
            finished.append(1)
            if len(finished) >= len(ids):
                done.set()

    task_postrun.connect(count, weak=False)
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False):
        started = time.perf_counter()
        for credential_id in ids:
            verify_credential.delay(credential_id)
        if not done.wait(timeout=600):
            raise SystemExit("The worker did not finish within 10 minutes.")
        elapsed = time.perf_counter() - started
    task_postrun.disconnect(count)
    return elapsed


def _in_loop(ids: list[str]) -> float:
    from integrations.services.verification import credential_verify

    started = time.perf_counter()
    for credential_id in ids:
        credential_verify(credential_id=credential_id)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--credentials", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    url = django_setup()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")

    Provider.latency = args.latency_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"Database: {url.rsplit('@', 1)[-1]}   provider: {base_url} (+{args.latency_ms:g} ms)")

    ids = _credentials(args.credentials, base_url)
    print(f"{len(ids):,} API-key credentials, sealed by the vault.\n")

    elapsed = _with_worker(ids, redis_url)
    assert _active(ids) == len(ids), "every credential should be active"
    print(
        f"  one Celery worker (solo, Redis): {len(ids) / elapsed:8.1f} verifications/s "
        f"({elapsed:.1f}s for {len(ids):,})"
    )
    _reset(ids)
    elapsed = _in_loop(ids)
    assert _active(ids) == len(ids), "every credential should be active"
    print(
        f"  the service in a loop (no broker): {len(ids) / elapsed:6.1f} verifications/s "
        f"({elapsed:.1f}s for {len(ids):,})"
    )
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
