"""Webhook deliveries per second of ONE Celery worker process, and its CPU per delivery.

    .venv/bin/python benchmarks/webhook_delivery.py [--deliveries 2000] [--latency-ms 50]
        [--concurrency N] [--rounds 3] [--goal 0]

Three processes, as in production: a local receiver (``_upstream.py``, answering each delivery
after ``--latency-ms``), one real Celery worker started as the README starts it (``celery -A
portal worker``, production settings, PostgreSQL, Redis broker; ``_worker.py``), and this
script, which writes ``--deliveries`` pending deliveries of as many events to one endpoint and
queues one delivery job each through Redis, timed until the last is recorded as delivered. Each
delivery is signed (Standard Webhooks) with the endpoint's sealed secret, sent, and recorded
with its attempt. The worker's CPU time per delivery comes from /proc.

Issue 11 asks for the rate and sets no goal for it; ``--goal`` (deliveries/s) makes the script
exit 1 when the rate misses it by more than the spread of the rounds.
"""

from __future__ import annotations

import argparse
import sys

import _bench
import _worker

TENANT = "bench-webhooks"
TASK = "integrations.tasks.deliver_webhook"


def _seed(n: int, receiver: str) -> list[str]:
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Tenant
    from accounts.services.tenants import tenant_create
    from integrations.models import Event, WebhookDelivery, WebhookEndpoint
    from integrations.services.webhooks import webhook_endpoint_secret_rotate

    Event.objects.filter(tenant__slug=TENANT).delete()
    WebhookEndpoint.objects.filter(tenant__slug=TENANT).delete()
    Tenant.objects.filter(slug=TENANT).delete()
    tenant = tenant_create(name="Bench webhooks", slug=TENANT)
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=f"{receiver}/hook")
    webhook_endpoint_secret_rotate(endpoint=endpoint)
    with transaction.atomic():
        # Written as event_emit writes them, without queueing: the rounds queue them.
        events = Event.objects.bulk_create(
            Event(tenant=tenant, type="credential.verified", data={"credential_id": str(number)})
            for number in range(n)
        )
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=timezone.now())
            for event in events
        )
    return [str(delivery.pk) for delivery in deliveries]


def _queue(ids: list[str]) -> None:
    from portal.celery import app

    for delivery_id in ids:
        app.send_task(TASK, args=[delivery_id])


def _run(ids: list[str], worker_pid: int) -> tuple[float, float]:
    from django.utils import timezone

    from integrations.models import WebhookDelivery

    WebhookDelivery.objects.filter(pk__in=ids).update(
        status="pending", delivered_at=None, attempt_count=0
    )
    since = timezone.now()
    return _worker.batch(
        queue=_queue,
        ids=ids,
        done=lambda: WebhookDelivery.objects.filter(pk__in=ids, delivered_at__gte=since).count(),
        pid=worker_pid,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="the worker's threads (default: the setting)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--goal", type=float, default=0, help="deliveries/s to check (0: none)")
    args = parser.parse_args()

    receiver_port = _bench.port(4)
    env = _bench.server_env("http://127.0.0.1:18499")
    _bench.django_in_process(env)
    from django.conf import settings

    _worker.broker_flush()
    ids = _seed(args.deliveries, f"http://127.0.0.1:{receiver_port}")
    receiver = _worker.provider(receiver_port, args.latency_ms)
    worker = _worker.worker(env, concurrency=args.concurrency)
    goals = _bench.Goals()
    try:
        _run(ids[:20], worker.popen.pid)  # warm: connections, imports
        print(f"Machine: {_bench.machine()}")
        threads = args.concurrency or settings.CELERY_WORKER_CONCURRENCY
        print(
            f"One worker: pool {settings.CELERY_WORKER_POOL}, concurrency {threads}; receiver "
            f"answers in {args.latency_ms:g} ms; {args.deliveries} deliveries per round, "
            f"{args.rounds} rounds\n"
        )
        rates, cpu = _bench.Figure(), _bench.Figure()
        for number in range(args.rounds):
            rate, cpu_per_delivery = _run(ids, worker.popen.pid)
            rates.values.append(rate)
            cpu.values.append(cpu_per_delivery * 1000)
            print(f"  round {number + 1}/{args.rounds} done", flush=True)
        print(
            f"  deliveries/s {rates}   worker CPU ms/delivery {cpu}   "
            f"core share for 1M/day {_worker.core_share(cpu)}"
        )
        if args.goal:
            goals.at_least("webhook deliveries/s of one worker", rates, args.goal)
    finally:
        worker.stop()
        receiver.stop()
    return goals.report()


if __name__ == "__main__":
    sys.exit(main())
