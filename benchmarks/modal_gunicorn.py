"""The modal's app list (5, 40 and 200 apps) against a bare view of the same gunicorn.

    .venv/bin/python benchmarks/modal_gunicorn.py [--rounds 5] [--seconds 5] [--connections 32]

One gunicorn (production settings, PostgreSQL, Redis, sync workers as the README runs them)
serves both ``/bench/bare`` (an ``HttpResponse("ok")``) and the modal's list page of a connect
session whose end user holds two accounts (one active, one invalid) on every third app. wrk
loads them in turn, A/B/A/B, for ``--rounds`` rounds at ``--connections`` connections; each
figure is the median with the spread of the rounds. Queries per page are counted in-process.

Goals of issue 11 (40 apps): at least 35 % of the bare view's throughput and p99 under 50 ms;
the same query count for 5 and 200 apps. Exits 1 when one is missed by more than the spread.
Before the load, it prints each page's CPU time per request in one process (the whole Django
stack, no HTTP server): on a busy machine that figure moves far less than the wrk rounds.
"""

from __future__ import annotations

import argparse
import sys

import _bench


def _seed(count: int) -> str:
    """A tenant offering ``count`` apps; the path of its end user's modal."""
    from django.utils import timezone

    from accounts.models import Tenant
    from integrations.models import App, Credential
    from integrations.services.connect_sessions import connect_session_create
    from tests import factories

    slug = f"bench-modal-{count}"
    Credential.objects.filter(tenant__slug=slug).delete()
    App.objects.filter(tenant__slug=slug).delete()
    Tenant.objects.filter(slug=slug).delete()
    tenant = factories.make_tenant(name=f"Bench modal {count}")
    Tenant.objects.filter(pk=tenant.pk).update(slug=slug)
    tenant.slug = slug
    end_user = factories.make_end_user(tenant=tenant, external_id="bench-user")
    apps = [
        factories.make_api_key_app(
            slug=f"bench-{count}-{n:03d}",
            tenant=tenant,
            description="A catalog app used by the benchmark.",
        )
        for n in range(count)
    ]
    flow = factories.make_flow(tenant=tenant, apps=apps)
    deployment = factories.make_deployment(tenant=tenant, flows=[flow])
    for app in apps[::3]:
        for who, status in (("a", "active"), ("b", "invalid")):
            factories.make_credential(
                end_user=end_user,
                app=app,
                identity=f"{who}@{app.slug}.test",
                status=status,
                last_verified_at=timezone.now(),
            )
    issued = connect_session_create(tenant=tenant, end_user=end_user, deployment=deployment)
    return f"/connect/{issued.token}/"


def _queries(path: str) -> tuple[int, int]:
    """(queries, bytes) of one list page, after a first request."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(path)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    return len(captured.captured_queries), len(response.content)


def _cpu_ms(path: str, *, batches: int = 8, size: int = 40) -> float:
    """CPU time (ms) this process spends on one request to ``path`` through the whole Django
    stack (middleware included, no HTTP server): the lowest of ``batches`` batches, a figure
    that load from other processes on the machine barely moves."""
    import io
    import time

    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    environ = _bench.wsgi_environ(path, {"Accept-Language": "en"})

    def call() -> None:
        statuses = []
        body = handler(
            {**environ, "wsgi.input": io.BytesIO()}, lambda s, h, e=None: statuses.append(s)
        )
        b"".join(body)
        assert statuses[0].startswith("200"), statuses

    for _ in range(10):
        call()
    best = float("inf")
    for _ in range(batches):
        start = time.process_time()
        for _ in range(size):
            call()
        best = min(best, (time.process_time() - start) / size * 1000)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, nargs="+", default=[5, 40, 200])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    web = _bench.port(20)
    env = _bench.server_env(f"http://127.0.0.1:{web}")
    _bench.django_in_process(env)
    _bench.collectstatic(env)
    paths = {count: _seed(count) for count in args.apps}
    measured = {count: _queries(path) for count, path in paths.items()}
    bare_cpu = _cpu_ms("/bench/bare")
    print(f"CPU per request in one process, whole Django stack: bare view {bare_cpu:.3f} ms")
    for count, path in paths.items():
        print(f"  app list, {count} apps: {_cpu_ms(path):.3f} ms")
    print()

    goals = _bench.Goals()
    load = {"connections": args.connections, "seconds": args.seconds}
    with _bench.serving(env, web, workers=args.workers, rounds=args.rounds, **load) as base:
        for count, path in paths.items():
            queries, size = measured[count]
            print(f"{count} apps ({queries} queries, {size // 1024} KB page):")
            bare, listed, share = _bench.against_bare(
                base,
                f"app list, {count} apps",
                lambda path=path: _bench.wrk(base + path, **load),
                rounds=args.rounds,
                **load,
            )
            print()
            if count == 40:
                goals.at_least("40 apps: app list throughput / bare view", share, 0.35)
                goals.at_most("40 apps: app list p99 (ms)", listed.p99, 50.0)
            if bare.errors or listed.errors:
                goals.missed.append(f"{count} apps: errors")
    counts = {count: queries for count, (queries, _) in measured.items()}
    print(f"Queries per list page: {counts}")
    if len(set(counts.values())) > 1:
        goals.missed.append("query count depends on the number of apps")
    return goals.report()


if __name__ == "__main__":
    sys.exit(main())
