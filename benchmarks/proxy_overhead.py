"""The proxy against a minimal Django pass-through and against the upstream called directly.

    .venv/bin/python benchmarks/proxy_overhead.py [--rounds 5] [--seconds 5] [--connections 32]

Two local upstreams in their own process (``_upstream.py``): one answering at once, one after
20 ms. For each, three sides alternate round by round under wrk:

- ``direct``: wrk → upstream;
- ``passthrough``: wrk → gunicorn → ``/bench/passthrough/…`` (pooled client, no key,
  credential or audit work) → upstream;
- ``proxy``: wrk → gunicorn → ``/api/v1/proxy/<app>/…`` with a tenant key and
  ``X-Portal-Credential`` → upstream.

Same gunicorn (production settings, PostgreSQL, Redis), same upstream, same connections.
Prints medians with the spread of the rounds, queries per proxied call, and the goals of
issue 11: proxy throughput ≥ 60 % of the pass-through's and p50 within 2 ms of it. Exits 1 when
a goal is missed by more than the spread.
"""

from __future__ import annotations

import argparse
import sys

import _bench


def _seed(upstreams: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A tenant key and, per upstream, a credential of an app based there."""
    from accounts.models import Tenant
    from accounts.services.tenants import tenant_api_key_create, tenant_create
    from integrations.models import App, Credential
    from tests import factories

    Credential.objects.filter(tenant__slug="bench-proxy").delete()
    App.objects.filter(tenant__slug="bench-proxy").delete()
    Tenant.objects.filter(slug="bench-proxy").delete()
    tenant = tenant_create(name="Bench proxy", slug="bench-proxy")
    key = tenant_api_key_create(tenant=tenant, name="bench").plaintext
    end_user = factories.make_end_user(tenant=tenant, external_id="bench-user")
    credentials = {}
    for name, url in upstreams.items():
        app = factories.make_api_key_app(slug=f"bench-{name}", tenant=tenant, api_base_url=url)
        credential = factories.make_credential(
            end_user=end_user, app=app, secret={"api_key": "bench-key-0123456789"}
        )
        credentials[name] = str(credential.pk)
    return key, credentials


def _queries_per_call(key: str, app: str, credential_id: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    headers = {"Authorization": f"Bearer {key}", "X-Portal-Credential": credential_id}
    client.get(f"/api/v1/proxy/{app}/warm", headers=headers)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/v1/proxy/{app}/items", headers=headers)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    web = _bench.port(10)
    upstream_ports = {"fast": (_bench.port(1), 0), "slow20ms": (_bench.port(2), 20)}
    upstreams = {name: f"http://127.0.0.1:{p}" for name, (p, _) in upstream_ports.items()}
    env = _bench.server_env(
        f"http://127.0.0.1:{web}",
        BENCH_UPSTREAMS=",".join(f"{name}={url}" for name, url in upstreams.items()),
    )
    _bench.django_in_process(env)
    key, credentials = _seed(upstreams)

    servers = [
        _bench.Process([_bench.PYTHON, "benchmarks/_upstream.py", str(p), str(delay)])
        for p, delay in upstream_ports.values()
    ]
    server = _bench.gunicorn(env, web, workers=args.workers)
    goals = _bench.Goals()
    try:
        _bench.wait_http(f"http://127.0.0.1:{web}/bench/bare")
        print(f"Machine: {_bench.machine()}")
        print(
            f"gunicorn: {args.workers} sync workers; wrk: {args.connections} connections, "
            f"{args.seconds:g} s per run, {args.rounds} rounds alternating\n"
        )
        for name, url in upstreams.items():
            queries = _queries_per_call(key, f"bench-{name}", credentials[name])
            load = dict(connections=args.connections, seconds=args.seconds)
            sides = {
                "direct": lambda url=url, load=load: _bench.wrk(f"{url}/items", **load),
                "passthrough": lambda name=name, load=load: _bench.wrk(
                    f"http://127.0.0.1:{web}/bench/passthrough/{name}/items", **load
                ),
                "proxy": lambda name=name, load=load: _bench.wrk(
                    f"http://127.0.0.1:{web}/api/v1/proxy/bench-{name}/items",
                    headers={
                        "Authorization": f"Bearer {key}",
                        "X-Portal-Credential": credentials[name],
                    },
                    **load,
                ),
            }
            print(f"Upstream {name} ({url}):")
            results = _bench.alternate(sides, rounds=args.rounds)
            for side in results.values():
                print(side.line())
            share = _bench.ratio(results["proxy"].rps, results["passthrough"].rps)
            added = _bench.difference(results["proxy"].p50, results["passthrough"].p50)
            print(f"  proxy / passthrough throughput: {share}")
            print(f"  proxy p50 - passthrough p50 (ms): {added}")
            print(f"  queries per proxied call: {queries}\n")
            goals.at_least(f"{name}: proxy throughput / passthrough", share, 0.60)
            goals.at_most(f"{name}: proxy p50 added over passthrough (ms)", added, 2.0)
            if any(side.errors for side in results.values()):
                goals.missed.append(f"{name}: errors")
    finally:
        server.stop()
        for upstream in servers:
            upstream.stop()
    return goals.report()


if __name__ == "__main__":
    sys.exit(main())
