"""Verifications and refreshes per second of ONE Celery worker process, and its CPU per job.

    .venv/bin/python benchmarks/verification_throughput.py [--jobs 2000] [--latency-ms 50]
        [--concurrency N] [--rounds 3]

Three processes, as in production: a local provider (``_upstream.py``, answering the
verification request and the token endpoint after ``--latency-ms``), one real Celery worker
started as the README starts it (``celery -A portal worker``: production settings, the thread
pool and concurrency of the settings unless ``--concurrency`` is given, PostgreSQL, Redis
broker), and this script, which seeds the benchmark database and queues the work through
Redis (``_worker.py``). The production path is measured: ``--jobs`` credentials are made due,
and the re-verification or refresh sweep (what beat runs every 30 s) claims them and queues
their batch jobs; timed until the last one is recorded in the database. The sweep's spread
(PORTAL_SWEEP_SPREAD_SECONDS, which starts a backlog's jobs over a few seconds) is 0 here, so
that the figure is the worker's. Per round: verify, refresh, and verify as single jobs (one
job per credential, as ``POST /verify`` or a pending credential queues it; printed, not a
goal), the order alternating between rounds. The worker's CPU time per credential comes from
/proc, and gives the share of one core needed to verify or refresh one million credentials a
day. Webhook deliveries: ``benchmarks/webhook_delivery.py``.

Goals of issue 11: ≥ 200 verifications/s against a provider answering in 50 ms, and one
million credentials a day on less than 10 % of a core. Exits 1 when one is missed by more
than the spread of the rounds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta

import _bench
import _worker

TENANT = "bench-workers"


def _seed(n: int, provider: str) -> dict[str, list[str]]:
    from django.utils import timezone

    from accounts.models import EndUser, Tenant
    from accounts.services.tenants import tenant_create
    from core.vault import seal_secret
    from integrations.models import App, Credential
    from integrations.services.oauth_clients import oauth_client_set
    from tests import factories

    Credential.objects.filter(tenant__slug=TENANT).delete()
    App.objects.filter(tenant__slug=TENANT).delete()
    Tenant.objects.filter(slug=TENANT).delete()
    tenant = tenant_create(name="Bench workers", slug=TENANT)
    key_app = factories.make_api_key_app(
        slug="bench-key", tenant=tenant, api_base_url=provider, reverify_interval_seconds=86400
    )
    oauth_app = factories.make_oauth_app(
        slug="bench-oauth", tenant=tenant, api_base_url=provider, token_url=f"{provider}/token"
    )
    oauth_client_set(tenant=tenant, app=oauth_app, client_id="bench", client_secret="bench-s")
    end_users = EndUser.objects.bulk_create(
        EndUser(tenant=tenant, external_id=f"user-{number}") for number in range(n)
    )
    keys, tokens = [], []
    soon = timezone.now() + timedelta(minutes=1)
    for number, end_user in enumerate(end_users):
        key = Credential(tenant=tenant, end_user=end_user, app=key_app, status="active")
        seal_secret(key, {"api_key": f"bench-key-{number:08d}"})
        keys.append(key)
        token = Credential(
            tenant=tenant, end_user=end_user, app=oauth_app, status="active", expires_at=soon
        )
        seal_secret(token, {"access_token": f"a-{number}", "refresh_token": f"r-{number}"})
        token.refresh_at = soon
        tokens.append(token)
    Credential.objects.bulk_create(keys + tokens)

    return {"verify": [str(c.pk) for c in keys], "refresh": [str(c.pk) for c in tokens]}


def _reset(kind: str, ids: list[str]) -> None:
    """Make ``ids`` due, as they are when the sweep finds them."""
    from django.utils import timezone

    from integrations.models import Credential

    now = timezone.now()
    # And not leased, where leases have columns of their own (the last run's lease may last).
    columns = {field.name for field in Credential._meta.concrete_fields}
    unleased = {
        name: None
        for name in ("refresh_leased_until", "verification_leased_until")
        if name in columns
    }
    if kind == "refresh":
        soon = now + timedelta(minutes=1)
        Credential.objects.filter(pk__in=ids).update(expires_at=soon, refresh_at=now, **unleased)
    else:
        Credential.objects.filter(pk__in=ids).update(next_verification_at=now, **unleased)


def _done(kind: str, ids: list[str], since) -> int:
    from integrations.models import Credential

    column = "last_refreshed_at" if kind == "refresh" else "last_verified_at"
    return Credential.objects.filter(pk__in=ids, **{f"{column}__gte": since}).count()


def _sweep(kind: str) -> Callable[[list[str]], None]:
    def queue(ids: list[str]) -> None:
        from integrations.services import sweeps

        sweep = sweeps.sweep_refresh_due if kind == "refresh" else sweeps.sweep_reverify_due
        if sweep().queued != len(ids):
            raise SystemExit(f"The {kind} sweep did not find the {len(ids)} due credentials.")

    return queue


def _single_jobs(ids: list[str]) -> None:
    from portal.celery import app

    for credential_id in ids:
        app.send_task("integrations.tasks.verify_credential", args=[credential_id])


KINDS = ("verify", "refresh", "verify-single")


def _run(kind: str, ids: list[str], worker_pid: int) -> tuple[float, float]:
    """(credentials per second, worker CPU seconds per credential) for one run of ``kind``."""
    from django.utils import timezone

    _reset(kind, ids)
    since = timezone.now()
    return _worker.batch(
        queue=_single_jobs if kind == "verify-single" else _sweep(kind),
        ids=ids,
        done=lambda: _done(kind, ids, since),
        pid=worker_pid,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="the worker's threads (default: the setting)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    provider_port = _bench.port(3)
    provider = f"http://127.0.0.1:{provider_port}"
    env = _bench.server_env("http://127.0.0.1:18499", PORTAL_SWEEP_SPREAD_SECONDS="0")
    _bench.django_in_process(env)
    from django.conf import settings

    _worker.broker_flush()
    ids = _seed(args.jobs, provider)

    upstream = _worker.provider(provider_port, args.latency_ms)
    worker = _worker.worker(env, concurrency=args.concurrency)
    goals = _bench.Goals()
    try:
        _run("verify-single", ids["verify"][:40], worker.popen.pid)  # warm: connections
        _run("verify", ids["verify"][:200], worker.popen.pid)
        print(f"Machine: {_bench.machine()}")
        threads = args.concurrency or settings.CELERY_WORKER_CONCURRENCY
        print(
            f"One worker: pool {settings.CELERY_WORKER_POOL}, concurrency {threads}; provider "
            f"answers in {args.latency_ms:g} ms; {args.jobs} credentials per run, "
            f"{args.rounds} rounds\n"
        )
        rates = {kind: _bench.Figure() for kind in KINDS}
        cpu = {kind: _bench.Figure() for kind in KINDS}
        for number in range(args.rounds):
            order = list(KINDS) if number % 2 == 0 else list(reversed(KINDS))
            for kind in order:
                rate, cpu_per_job = _run(kind, ids[kind.split("-")[0]], worker.popen.pid)
                rates[kind].values.append(rate)
                cpu[kind].values.append(cpu_per_job * 1000)
            print(f"  round {number + 1}/{args.rounds} done", flush=True)
        for kind in KINDS:
            share = _worker.core_share(cpu[kind])
            print(
                f"  {kind:<13} credentials/s {rates[kind]}   worker CPU ms each {cpu[kind]}   "
                f"core share for 1M/day {share}"
            )
            if kind != "verify-single":
                goals.at_most(f"{kind}: share of one core for one million a day", share, 0.10)
        goals.at_least("verifications/s of one worker", rates["verify"], 200)
    finally:
        worker.stop()
        upstream.stop()
    return goals.report()


if __name__ == "__main__":
    sys.exit(main())
