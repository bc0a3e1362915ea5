"""The production settings, plus the benchmarks' reference views (``benchmarks/urls.py``)."""

from portal.settings.production import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
