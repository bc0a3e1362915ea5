"""The project's URLs plus the reference views the benchmarks compare against, same server.

- ``/bench/bare``: the cheapest Django answer (what a view costs before it does anything);
- ``/bench/passthrough/<name>/<path>``: a minimal pass-through to the upstream named in
  ``BENCH_UPSTREAMS`` (``name=url,name=url``) on the same
  pooled transport as the proxy (``core.http``), with no key, credential or audit work: what
  any Django proxy must pay, so the proxy's figures are read against it.
"""

import os

from django.http import HttpResponse
from django.urls import path

from core.http import outbound_request
from portal.urls import urlpatterns as portal_urlpatterns


def bare(request):
    return HttpResponse(b"ok", content_type="text/plain")


UPSTREAMS = dict(
    entry.split("=", 1) for entry in os.environ.get("BENCH_UPSTREAMS", "").split(",") if entry
)


def passthrough(request, name: str, rest: str):
    upstream = outbound_request("GET", f"{UPSTREAMS[name].rstrip('/')}/{rest}", timeout=(5, 30))
    return HttpResponse(
        upstream.content,
        status=upstream.status_code,
        content_type=upstream.headers.get("Content-Type", "application/octet-stream"),
    )


urlpatterns = [
    path("bench/bare", bare),
    path("bench/passthrough/<str:name>/<path:rest>", passthrough),
    *portal_urlpatterns,
]
