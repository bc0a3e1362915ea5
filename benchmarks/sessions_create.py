"""``POST /api/v1/sessions`` against a bare view of the same gunicorn, alternating.

    .venv/bin/python benchmarks/sessions_create.py [--rounds 5] [--seconds 5] [--connections 32]

One gunicorn (production settings, PostgreSQL, Redis): wrk posts a session for one end user
(a Lua script sets the method, body and key) and, in turn, gets ``/bench/bare``. Prints each
side's median and spread over the rounds, their ratio, and the queries of one call. No goal is
set for it in issue 11: the figures are for reading; exits 1 only on errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import _bench


def _seed() -> str:
    from accounts.models import Tenant
    from accounts.services.tenants import tenant_api_key_create, tenant_create

    Tenant.objects.filter(slug="bench-sessions").delete()
    tenant = tenant_create(name="Bench sessions", slug="bench-sessions")
    return tenant_api_key_create(tenant=tenant, name="bench").plaintext


BODY = {"end_user": {"id": "bench-user", "email": "bench@example.com"}}


def _queries(key: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", headers={"Authorization": f"Bearer {key}"})
    client.post("/api/v1/sessions", json.dumps(BODY), content_type="application/json")
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            "/api/v1/sessions", json.dumps(BODY), content_type="application/json"
        )
    assert response.status_code == 201, response.content
    return len(captured.captured_queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    web = _bench.port(30)
    env = _bench.server_env(f"http://127.0.0.1:{web}")
    _bench.django_in_process(env)
    key = _seed()
    queries = _queries(key)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        )

    load = {"connections": args.connections, "seconds": args.seconds}
    with _bench.serving(env, web, workers=args.workers, rounds=args.rounds, **load) as base:
        bare, sessions, _ = _bench.against_bare(
            base,
            "POST /api/v1/sessions",
            lambda: _bench.wrk(f"{base}/api/v1/sessions", script=script.name, **load),
            rounds=args.rounds,
            **load,
        )
    print(f"  queries per POST /sessions: {queries}")
    return 1 if bare.errors or sessions.errors else 0


if __name__ == "__main__":
    sys.exit(main())
