"""Benchmark: the modal's app list under gunicorn, against a trivial view of the same server.

Seeds a throw-away database (SQLite in a temporary folder, or ``--database-url``) with a tenant
offering ``--apps`` apps (the end user holding accounts on some of them), serves the project
with gunicorn under the production settings, and drives both URLs with a small load generator
(threads, one connection per request as gunicorn's sync workers close them, bounded by count and
time). Prints requests per second and latency percentiles for each, and their ratio.

    .venv/bin/python benchmarks/modal_gunicorn.py [--apps 40] [--workers 2] [--concurrency 8]
        [--duration 10] [--requests 5000] [--database-url postgres://…]
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))

SEED = textwrap.dedent(
    """
    import django
    django.setup()
    from accounts.services.end_users import end_user_upsert
    from accounts.services.sessions import connect_session_create
    from accounts.services.tenants import tenant_create
    from integrations.models import Credential
    from core.vault import seal_secret
    from integrations.models import App, Deployment, Flow

    count = int(os.environ["BENCH_APPS"])
    tenant = tenant_create(name="Bench Co", slug="bench-co")
    apps = []
    for n in range(count):
        app = App(
            slug=f"bench-app-{n:03d}",
            name=f"Bench App {n:03d}",
            description="A catalog app used by the benchmark.",
            icon="integrations/icons/default.svg",
            auth_type=App.AuthType.API_KEY,
            fields=[{"name": "api_key", "label": "API key", "secret": True}],
            auth_scheme={"in": "header", "name": "X-API-Key", "template": "{api_key}"},
            api_base_url="https://api.example.com",
            verification={"path": "/me", "identity": ["email"]},
        )
        app.full_clean()
        app.save()
        apps.append(app)
    flow = Flow.objects.create(tenant=tenant, name="Everything", status=Flow.Status.PUBLISHED)
    flow.apps.set(apps)
    deployment = Deployment.objects.create(tenant=tenant, name="Production", is_active=True)
    deployment.flows.set([flow])
    user = end_user_upsert(tenant=tenant, external_id="bench-user", email="bench@example.com")
    for app in apps[::3]:
        for who, status in (("a", "active"), ("b", "invalid")):
            credential = Credential(
                tenant=tenant, end_user=user, app=app, identity=f"{who}@{app.slug}.test",
                status=status,
            )
            seal_secret(credential, {"api_key": "bench-secret-" + app.slug})
            credential.save()
    issued = connect_session_create(tenant=tenant, end_user=user, deployment=deployment)
    print(issued.token)
    """
)


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def line(self) -> str:
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")
        return (
            f"{self.name:<12} {len(self.latencies):>6} req  {self.errors:>3} err  "
            f"{self.rps:>8.1f} req/s  mean {mean:6.1f} ms  p50 {self.percentile(50):6.1f}  "
            f"p90 {self.percentile(90):6.1f}  p99 {self.percentile(99):6.1f} ms"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def load(port: int, name: str, path: str, *, concurrency: int, duration: float, limit: int):
    """Send requests from ``concurrency`` threads until ``duration`` seconds or ``limit``."""
    result = Result(name)
    lock = threading.Lock()
    issued = 0
    deadline = time.perf_counter() + duration

    def worker() -> None:
        nonlocal issued
        while time.perf_counter() < deadline:
            with lock:
                if issued >= limit:
                    return
                issued += 1
            started = time.perf_counter()
            try:
                status, _ = get(port, path)
                ok = status == 200
            except OSError:
                ok = False
            took = time.perf_counter() - started
            with lock:
                if ok:
                    result.latencies.append(took)
                else:
                    result.errors += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - begin
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per URL")
    parser.add_argument("--requests", type=int, default=5000, help="at most, per URL")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    port = free_port()
    sys.path.insert(0, str(ROOT))
    from portal.setup_files import new_keyring_entry

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "PYTHONPATH": str(ROOT),
        "PORTAL_VAR_DIR": str(workdir),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PORTAL_ENCRYPTION_KEYS": new_keyring_entry(),
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "SECURE_SSL_REDIRECT": "false",
        "USE_X_FORWARDED_PROTO": "false",
        "LOG_LEVEL": "WARNING",
        "BENCH_APPS": str(args.apps),
    }
    env.pop("REDIS_URL", None)

    def manage(*command: str) -> None:
        subprocess.run(
            [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )

    print(f"Seeding {args.apps} apps in {env['DATABASE_URL'].split('@')[-1]} …", flush=True)
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput")
    seeded = subprocess.run(
        [PYTHON, "-c", "import os\n" + SEED],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = seeded.stdout.strip().splitlines()[-1]
    list_path = f"/connect/{token}/"
    health_path = "/connect/healthz"

    server = subprocess.Popen(
        [
            GUNICORN,
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                if get(port, health_path, timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            print("gunicorn did not start", file=sys.stderr)
            return 1
        status, body = get(port, list_path)
        listed = body.count(b'class="portal-app"')
        if status != 200 or listed != args.apps:
            print(f"The list page answered {status} with {listed} apps", file=sys.stderr)
            return 1
        for path in (health_path, list_path):  # warm both up in every worker
            for _ in range(20):
                get(port, path)

        print(
            f"gunicorn: {args.workers} sync workers; load: {args.concurrency} threads, "
            f"up to {args.requests} requests or {args.duration:.0f} s per URL",
            flush=True,
        )
        trivial = load(
            port,
            "healthz",
            health_path,
            concurrency=args.concurrency,
            duration=args.duration,
            limit=args.requests,
        )
        print(trivial.line(), flush=True)
        app_list = load(
            port,
            "app list",
            list_path,
            concurrency=args.concurrency,
            duration=args.duration,
            limit=args.requests,
        )
        print(app_list.line(), flush=True)
        print(
            f"ratio        app list / healthz: {app_list.rps / trivial.rps:.2f}x the throughput, "
            f"{app_list.percentile(50) / trivial.percentile(50):.2f}x the median latency "
            f"({args.apps} apps, {len(body) // 1024} KB page)"
        )
        return 0 if not (trivial.errors or app_list.errors) else 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
