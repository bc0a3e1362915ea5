"""What the HTTP benchmarks share: production settings, gunicorn, wrk, and A/B/A/B rounds.

Every benchmark that serves HTTP runs the project under ``benchmarks.settings`` (the production
settings plus two reference views, see ``benchmarks/urls.py``) in one gunicorn, on PostgreSQL
(``BENCH_DATABASE_URL``) and Redis (``BENCH_REDIS_URL``), and loads it with Debian's ``wrk``
(installed with apt-get when missing and allowed). The sides being compared alternate
A, B, A, B … for ``--rounds`` rounds so that load from other processes on the machine falls on
both; each figure is the median of the rounds, with the spread (lowest-highest) beside it.

Ports are 18400-18499 (the block this project's benchmarks use on shared machines); override
with ``BENCH_PORT_BASE``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18400"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def port(offset: int) -> int:
    return PORT_BASE + offset


def machine() -> str:
    """One line about the machine and its load, printed with every result."""
    cores = os.cpu_count()
    load = os.getloadavg()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores ({model}), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing Debian's package (apt-get install -y wrk) …", flush=True)
    command = ["apt-get", "install", "-y", "wrk"]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    subprocess.run(command, check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed; install it and re-run.")


def server_env(base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production process on the benchmark database and Redis."""
    sys.path.insert(0, str(ROOT))
    from portal.setup_files import new_keyring_entry

    keyring = os.environ.get("BENCH_ENCRYPTION_KEYS") or new_keyring_entry()
    os.environ["BENCH_ENCRYPTION_KEYS"] = keyring  # the same key for the seed and the servers
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(ROOT),
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "PORTAL_ENCRYPTION_KEYS": keyring,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PORTAL_BASE_URL": base_url,
        "SECURE_SSL_REDIRECT": "false",
        "USE_X_FORWARDED_PROTO": "false",
        "LOG_LEVEL": "WARNING",
        # The local upstreams and providers are on this machine.
        "PORTAL_ALLOW_PRIVATE_NETWORK": "true",
        "PORTAL_API_RATE_LIMIT": "100000000/m",
        "PORTAL_VAR_DIR": os.environ.get("BENCH_VAR_DIR", "/tmp/portal-bench-var"),
        **extra,
    }


def collectstatic(env: dict[str, str]) -> None:
    """The production static files (the manifest the templates' {% static %} reads)."""
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def ensure_database() -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def django_in_process(env: dict[str, str]) -> None:
    """Set up Django in this process with ``env`` (to seed the database), migrated."""
    ensure_database()
    os.environ.update(env)
    os.environ["ALLOWED_HOSTS"] += ",testserver"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def wait_http(url: str, *, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds:g} s")


class Process:
    """A child process in its own process group, stopped (with its children) on exit."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env or os.environ.copy(), start_new_session=True
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def gunicorn(env: dict[str, str], bind_port: int, *, workers: int = 4) -> Process:
    """The project under production settings, as the README runs it (sync workers)."""
    return Process(
        [
            GUNICORN,
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{bind_port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env,
    )


@contextmanager
def serving(
    env: dict[str, str],
    bind_port: int,
    *,
    workers: int,
    connections: int,
    seconds: float,
    rounds: int,
) -> Iterator[str]:
    """One gunicorn on ``bind_port``, answering, for the ``with`` block; yields its base URL.

    Prints the machine line and the load being applied, so every result says how it was taken.
    """
    base = f"http://127.0.0.1:{bind_port}"
    with gunicorn(env, bind_port, workers=workers):
        wait_http(f"{base}/bench/bare")
        print(f"Machine: {machine()}")
        print(
            f"gunicorn: {workers} sync workers; wrk: {connections} connections, "
            f"{seconds:g} s per run, {rounds} rounds alternating\n"
        )
        yield base


@dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(
    url: str,
    *,
    connections: int = 32,
    seconds: float = 5,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> WrkRun:
    command = [
        ensure_wrk(),
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1))
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match.group(1))
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if match := re.search(socket_errors, output):
        errors += sum(int(n) for n in match.groups())
    return WrkRun(rps=rps, p50_ms=p50, p99_ms=p99, errors=errors)


@dataclass
class Figure:
    """One measured quantity over the rounds: its median and spread."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values, default=float("nan"))

    @property
    def high(self) -> float:
        return max(self.values, default=float("nan"))

    def __str__(self) -> str:
        return f"{self.median:9.2f} [{self.low:.2f}-{self.high:.2f}]"


@dataclass
class Side:
    name: str
    rps: Figure = field(default_factory=Figure)
    p50: Figure = field(default_factory=Figure)
    p99: Figure = field(default_factory=Figure)
    errors: int = 0

    def add(self, run: WrkRun) -> None:
        if not run.rps:  # nothing answered within wrk's timeout: a failed run, not a figure
            self.errors += 1
            return
        self.rps.values.append(run.rps)
        self.p50.values.append(run.p50_ms)
        self.p99.values.append(run.p99_ms)
        self.errors += run.errors

    def line(self) -> str:
        return f"  {self.name:<34} req/s {self.rps}   p50 ms {self.p50}   p99 ms {self.p99}" + (
            f"   ERRORS {self.errors}" if self.errors else ""
        )


def alternate(sides: dict[str, callable], *, rounds: int) -> dict[str, Side]:
    """Run each side once per round, in turn (A, B, A, B …); return each side's figures."""
    results = {name: Side(name) for name in sides}
    for run in sides.values():  # warm-up: every worker imports, connects and caches first
        run()
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            results[name].add(sides[name]())
        print(f"  round {number + 1}/{rounds} done", flush=True)
    return results


def against_bare(
    base: str, name: str, run: callable, *, rounds: int, connections: int, seconds: float
) -> tuple[Side, Side, Figure]:
    """``run`` (one wrk run of the side measured) and the bare view, alternating; prints both
    sides and returns them with the per-round throughput ratio side / bare view."""
    results = alternate(
        {
            "bare view": lambda: wrk(
                f"{base}/bench/bare", connections=connections, seconds=seconds
            ),
            name: run,
        },
        rounds=rounds,
    )
    bare, side = results.values()
    for each in results.values():
        print(each.line())
    share = ratio(side.rps, bare.rps)
    print(f"  {name} / bare view throughput: {share}")
    return bare, side, share


def ratio(a: Figure, b: Figure) -> Figure:
    """The per-round ratio a/b (the rounds ran side by side, so their ratios pair up)."""
    return Figure([x / y for x, y in zip(a.values, b.values, strict=False) if y])


def difference(a: Figure, b: Figure) -> Figure:
    return Figure([x - y for x, y in zip(a.values, b.values, strict=False)])


class Goals:
    """Goals checked at the end: missed by more than the measured spread means exit 1."""

    def __init__(self) -> None:
        self.missed: list[str] = []
        self.lines: list[str] = []

    def at_least(self, name: str, figure: Figure, goal: float) -> None:
        self._check(name, figure, goal, figure.median >= goal, figure.high >= goal, "≥")

    def at_most(self, name: str, figure: Figure, goal: float) -> None:
        self._check(name, figure, goal, figure.median <= goal, figure.low <= goal, "≤")

    def _check(self, name, figure, goal, met, within_spread, sign) -> None:
        verdict = "met" if met else ("missed, within the spread" if within_spread else "MISSED")
        self.lines.append(
            f"  {name}: {figure.median:.3g} (spread {figure.low:.3g}-"
            f"{figure.high:.3g}), goal {sign} {goal:g}: {verdict}"
        )
        if not met and not within_spread:
            self.missed.append(name)

    def report(self) -> int:
        print("\nGoals:")
        for line in self.lines:
            print(line)
        return 1 if self.missed else 0


def wsgi_environ(path: str, headers: dict[str, str] | None = None) -> dict:
    """A GET of ``path`` as gunicorn hands it to Django, for the in-process CPU figures (the
    ``wsgi.input`` is the caller's: a fresh one per call)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
        "HTTP_USER_AGENT": "wrk",
        "HTTP_ACCEPT": "*/*",
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ
