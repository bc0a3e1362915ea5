"""Shared set-up of the benchmarks: Django on a dedicated PostgreSQL database, migrated.

The database is ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench``);
it is created when missing and its rows are replaced by each run, so never point it at real data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench"


def _ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup() -> str:
    """Point Django at the benchmark database, migrate it, and return its URL."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    _ensure_database(url)
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = url
    # The test settings: no files written, a throwaway keyring, the database from DATABASE_URL.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    import django
    from django.core.management import call_command

    django.setup()
    from django.db import connections

    # Persistent connections, as production runs (DATABASE_CONN_MAX_AGE, 60 s by default).
    connections.settings["default"]["CONN_MAX_AGE"] = 60
    connections["default"].settings_dict["CONN_MAX_AGE"] = 60
    call_command("migrate", verbosity=0)
    return url
