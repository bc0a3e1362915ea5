"""CPU per proxied call against CPU per pass-through call, in one process, without load.

    .venv/bin/python benchmarks/proxy_cpu.py [--calls 300] [--rounds 7] [--profile SIDE]

The wall-clock benchmark (``proxy_overhead.py``) needs a quiet machine. This one does not: it
calls the project's WSGI application directly (production settings, PostgreSQL, Redis, every
middleware, ``request_finished`` and its after-response work included) against a local upstream
in its own process, and counts the CPU time of this process only (``time.process_time``), so
load from other processes changes little. The two sides alternate in blocks of ``--calls``
for ``--rounds`` rounds; each figure is the median per call with its spread. The database's
and the upstream's own CPU are not counted here: the queries per call are printed beside it.

Read it with issue 11's goal: a proxy throughput of 60 % of the pass-through's means a proxied
call may cost at most about 1.67 times a pass-through call (its own part ≤ ~0.67 times).
``--profile`` prints a cProfile of one side instead.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

import _bench
from proxy_overhead import _seed


def _caller(application, path: str, headers: dict[str, str]):
    import io as _io

    template = _bench.wsgi_environ(path, headers)

    def call() -> None:
        environ = dict(template)
        environ["wsgi.input"] = _io.BytesIO(b"")
        status = []
        result = application(environ, lambda s, h, exc_info=None: status.append(s))
        try:
            for _chunk in result:
                pass
        finally:
            result.close()  # what the WSGI server does: fires request_finished
        if not status[0].startswith("200"):
            raise SystemExit(f"{path}: {status[0]}")

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=["proxy", "passthrough"])
    parser.add_argument(
        "--only",
        choices=["proxy", "passthrough"],
        help="warm up, make --calls calls of this side and stop (for an instruction counter: "
        "run under valgrind --tool=cachegrind with two --calls values and subtract)",
    )
    args = parser.parse_args()

    upstream_port = _bench.port(21)
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = _bench.server_env("http://127.0.0.1", BENCH_UPSTREAMS=f"fast={upstream}")
    _bench.django_in_process(env)
    key, credentials = _seed({"fast": upstream})

    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    application = get_wsgi_application()
    sides = {
        "passthrough": _caller(application, "/bench/passthrough/fast/items", {}),
        "proxy": _caller(
            application,
            "/api/v1/proxy/bench-fast/items",
            {"Authorization": f"Bearer {key}", "X-Portal-Credential": credentials["fast"]},
        ),
    }
    with _bench.Process([_bench.PYTHON, "benchmarks/_upstream.py", str(upstream_port), "0"]):
        _bench.wait_http(f"{upstream}/")
        if args.only:
            call = sides[args.only]
            for _ in range(50 + args.calls):
                call()
            return 0
        for call in sides.values():
            for _ in range(50):
                call()
        for name, call in sides.items():
            with CaptureQueriesContext(connection) as captured:
                call()
            print(f"{name}: {len(captured)} queries per call")
            for query in captured.captured_queries:
                print(f"    {query['sql'][:110]}")
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            call = sides[args.profile]
            profiler.enable()
            for _ in range(args.calls):
                call()
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
            stats.print_stats(90)
            for name in ("proxy_forward", "(proxy)", "proxy_key_and_credential", "_get_response"):
                stats.print_callees(name)
            print(out.getvalue())
            return 0
        if os.environ.get("PROXY_CPU_NO_GC"):
            import gc

            gc.freeze()
            gc.disable()
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        system: dict[str, list[float]] = {name: [] for name in sides}
        wall: dict[str, list[float]] = {name: [] for name in sides}
        for number in range(args.rounds):
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            for name in order:
                call = sides[name]
                started_cpu, started = time.process_time(), time.perf_counter()
                started_system = os.times().system
                for _ in range(args.calls):
                    call()
                cpu[name].append((time.process_time() - started_cpu) / args.calls * 1000)
                system[name].append((os.times().system - started_system) / args.calls * 1000)
                wall[name].append((time.perf_counter() - started) / args.calls * 1000)
    print(f"\nMachine: {_bench.machine()}; {args.rounds} rounds of {args.calls} calls per side")
    for name in sides:
        print(
            f"  {name:<12} CPU ms/call {statistics.median(cpu[name]):.3f} "
            f"[{min(cpu[name]):.3f}-{max(cpu[name]):.3f}] (system "
            f"{statistics.median(system[name]):.3f})   wall ms/call "
            f"{statistics.median(wall[name]):.3f}"
        )
    ratios = [p / b for p, b in zip(cpu["proxy"], cpu["passthrough"], strict=True)]
    print(
        f"  proxy / passthrough CPU: {statistics.median(ratios):.2f} "
        f"[{min(ratios):.2f}-{max(ratios):.2f}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
