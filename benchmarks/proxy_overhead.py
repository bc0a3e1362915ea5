"""The proxy's overhead: the same requests sent through /api/v1/proxy and straight upstream.

Starts a small local upstream (its own process), serves the project with gunicorn on a free
local port (SQLite in a temporary directory unless --database-url is given), seeds a tenant,
an API key, an app pointing at the upstream and a credential, then sends bounded batches of
GET requests both ways with the same client concurrency and prints requests per second,
latency percentiles and their ratios.

    .venv/bin/python benchmarks/proxy_overhead.py [--requests 400] [--concurrency 4]
        [--workers 2] [--max-seconds 60] [--database-url postgres://...]

Every proxied call does what production does: authenticates the key, counts the rate limit,
opens the credential from the vault, writes two audit rows and makes the upstream request.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
UPSTREAM_KEY = "bench_upstream_key_0123456789"
PAYLOAD = json.dumps(
    {"items": [{"id": n, "title": f"Item {n}", "done": n % 2 == 0} for n in range(10)]}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.headers.get("X-API-Key") != UPSTREAM_KEY:
            body, status = b'{"error": "unauthorized"}', 401
        else:
            body, status = PAYLOAD, 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve_upstream(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), UpstreamHandler)
    server.daemon_threads = True
    server.serve_forever()


def wait_for(url: str, *, timeout: float = 30.0, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, **kwargs)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:g} s")


SETTINGS_MODULE = """
from portal.settings.dev import *  # noqa

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
PORTAL_API_RATE_LIMIT = "100000000/m"
LOGGING["root"]["level"] = "WARNING"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several gunicorn workers write audit rows at once: WAL and immediate transactions.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
"""

SEED = """
import json
import django
django.setup()
from accounts.services.tenants import tenant_api_key_create, tenant_create
from integrations.models import Credential
from accounts.services.end_users import end_user_upsert
from core.vault import seal_secret
from integrations.models import App

tenant = tenant_create(name="Bench tenant", slug="bench-{run}")
app = App(
    slug="bench-upstream", tenant=tenant, name="Bench upstream", auth_type="api_key",
    fields=[{{"name": "api_key", "label": "API key", "secret": True}}],
    auth_scheme={{"in": "header", "name": "X-API-Key", "template": "{{api_key}}"}},
    api_base_url="{base_url}",
    verification={{"path": "/items", "identity": ["id"]}},
)
app.full_clean()
app.save()
user = end_user_upsert(tenant=tenant, external_id="bench-user")
credential = Credential(tenant=tenant, end_user=user, app=app, status="active")
seal_secret(credential, {{"api_key": "{key}"}})
credential.save()
print(json.dumps({{
    "api_key": tenant_api_key_create(tenant=tenant, name="bench").plaintext,
    "credential_id": str(credential.pk),
}}))
"""


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    elapsed: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) * 1000


def run_batch(
    name: str, url: str, headers: dict, *, count: int, concurrency: int, max_seconds: float
) -> Result:
    local = threading.local()
    deadline = time.monotonic() + max_seconds

    def one(_: int) -> float | None:
        if time.monotonic() > deadline:
            return None
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            response = session.get(url, headers=headers, timeout=30)
            ok = response.status_code == 200 and response.content == PAYLOAD
        except requests.RequestException:
            ok = False
        took = time.perf_counter() - started
        return took if ok else -took

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = [o for o in pool.map(one, range(count)) if o is not None]
    elapsed = time.perf_counter() - started
    return Result(
        name=name,
        latencies=[o for o in outcomes if o >= 0],
        errors=sum(1 for o in outcomes if o < 0),
        elapsed=elapsed,
    )


def report(direct: Result, proxied: Result, args: argparse.Namespace) -> None:
    print()
    print(
        f"Proxy overhead: {args.requests} GET requests each way, concurrency {args.concurrency}, "
        f"gunicorn {args.workers} sync worker(s), {'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    print(
        f"{'':<10}{'req/s':>10}{'mean ms':>10}{'p50 ms':>10}{'p90 ms':>10}"
        f"{'p99 ms':>10}{'errors':>8}"
    )
    for result in (direct, proxied):
        print(
            f"{result.name:<10}{result.rps:>10.1f}{result.mean:>10.2f}"
            f"{result.percentile(50):>10.2f}{result.percentile(90):>10.2f}"
            f"{result.percentile(99):>10.2f}{result.errors:>8}"
        )
    print(
        f"ratio     throughput proxy/direct {proxied.rps / direct.rps:.3f}; "
        f"latency p50 proxy/direct {proxied.percentile(50) / direct.percentile(50):.1f}x; "
        f"added p50 {proxied.percentile(50) - direct.percentile(50):.2f} ms, "
        f"p99 {proxied.percentile(99) - direct.percentile(99):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per batch")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    (workdir / "bench_settings.py").write_text(textwrap.dedent(SETTINGS_MODULE))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PORTAL_VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DEBUG": "false",
        "REDIS_URL": "",
        "PORTAL_SANDBOX_ENABLED": "false",
    }
    upstream_port, portal_port = free_port(), free_port()
    upstream_base = f"http://127.0.0.1:{upstream_port}/api"
    upstream = multiprocessing.Process(target=serve_upstream, args=(upstream_port,), daemon=True)
    gunicorn = None
    try:
        upstream.start()
        wait_for(f"{upstream_base}/items")
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        seeded = subprocess.run(
            [
                PYTHON,
                "-c",
                SEED.format(
                    base_url=upstream_base, key=UPSTREAM_KEY, run=workdir.name[-8:].lower()
                ),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        gunicorn = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("gunicorn")),
                "portal.wsgi",
                "--bind",
                f"127.0.0.1:{portal_port}",
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        proxy_url = f"http://127.0.0.1:{portal_port}/api/v1/proxy/bench-upstream/items"
        proxy_headers = {
            "Authorization": f"Bearer {seed['api_key']}",
            "X-Portal-Credential": seed["credential_id"],
        }
        direct_url, direct_headers = f"{upstream_base}/items", {"X-API-Key": UPSTREAM_KEY}
        wait_for(proxy_url, headers=proxy_headers)

        batch = {"concurrency": args.concurrency, "max_seconds": args.max_seconds}
        run_batch("warmup", direct_url, direct_headers, count=args.warmup, **batch)
        run_batch("warmup", proxy_url, proxy_headers, count=args.warmup, **batch)
        direct = run_batch("direct", direct_url, direct_headers, count=args.requests, **batch)
        proxied = run_batch("proxy", proxy_url, proxy_headers, count=args.requests, **batch)
        if not direct.latencies or not proxied.latencies:
            raise SystemExit(f"No successful requests (errors: {direct.errors}, {proxied.errors})")
        report(direct, proxied, args)
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=10)
        upstream.terminate()
        upstream.join(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
