"""What the worker benchmarks share: a local provider, one real Celery worker, timed batches.

The provider (``_upstream.py``) runs in its own process and answers every request after a fixed
delay. The worker is started exactly as the README's production section starts it (``celery -A
portal worker``: the thread pool and its concurrency come from the settings, so nothing here
differs from production but the log level), on the benchmark's PostgreSQL and Redis. A batch is
queued through Redis and timed until the last job is recorded in the database; the worker's
CPU time over the batch comes from /proc, so it counts what the jobs cost, not the waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import _bench

DAY_SECONDS = 86_400


def provider(port: int, latency_ms: float) -> _bench.Process:
    return _bench.Process([_bench.PYTHON, "benchmarks/_upstream.py", str(port), str(latency_ms)])


def worker(env: dict[str, str], *, concurrency: int | None = None) -> _bench.Process:
    """``celery -A portal worker`` as in production; ``concurrency`` overrides the setting."""
    command = [
        str(_bench.ROOT / ".venv/bin/celery"),
        "-A",
        "portal",
        "worker",
        "--loglevel",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return _bench.Process(command, env)


def broker_flush() -> None:
    import redis

    redis.Redis.from_url(_bench.REDIS_URL).delete("celery", "unacked", "unacked_index")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch(
    *,
    queue: Callable[[list[str]], None],
    ids: list[str],
    done: Callable[[], int],
    pid: int,
    limit: float = 600,
) -> tuple[float, float]:
    """Queue the work on ``ids`` (``queue``: jobs sent, or a sweep run) and wait until ``done()``
    counts them all: (rows per second, worker CPU seconds per row)."""
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    queue(ids)
    while (finished := done()) < len(ids):
        if time.perf_counter() - started > limit:
            raise SystemExit(f"only {finished}/{len(ids)} done after {limit:g} s")
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    return len(ids) / elapsed, (cpu_seconds(pid) - cpu) / len(ids)


def core_share(cpu_ms: _bench.Figure, per_day: int = 1_000_000) -> _bench.Figure:
    """The share of one core that ``per_day`` jobs a day take at ``cpu_ms`` per job."""
    return _bench.Figure([ms / 1000 * per_day / DAY_SECONDS for ms in cpu_ms.values])
