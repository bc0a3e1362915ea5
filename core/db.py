"""A request that lost its database connection is retried once, when that is safe.

PostgreSQL restarts, fails over, or ends a backend (``pg_terminate_backend``): the connection a
process holds is dead. Between requests, ``CONN_HEALTH_CHECKS`` finds it before it is used. In
the middle of a request, the query fails; this middleware then closes the dead connections and
runs the request once more on fresh ones, if the request is safe to repeat (GET, HEAD, OPTIONS)
and no transaction of the caller is open. Anything else fails as it would have (the API answers
503 in its error shape, see ``api/errors.py``), and the next request connects afresh. One retry
only, so a database that stays down is reported, never looped on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONNECTION_ERRORS = (OperationalError, InterfaceError)
_LOST = "_portal_database_connection_lost"


def database_error_note(request: HttpRequest, exc: BaseException) -> None:
    """Mark ``request`` as having failed on the database (for handlers that answer the error
    themselves, like the API's, so the middleware still sees it)."""
    if isinstance(exc, CONNECTION_ERRORS):
        setattr(request, _LOST, True)


def _close_dead_connections() -> bool:
    """Close every connection that no longer works; True when there was one."""
    closed = False
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block:
            continue
        if not connection.is_usable():
            connection.close()
            closed = True
    return closed


class DatabaseRetryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, _LOST, False):
            return response
        setattr(request, _LOST, False)
        if request.method in SAFE_METHODS and _close_dead_connections():
            logger.warning(
                "Database connection lost during %s %s; retrying once on a new connection.",
                request.method,
                request.path,
            )
            response = self.get_response(request)
        else:
            _close_dead_connections()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        database_error_note(request, exception)
        if getattr(request, _LOST, False) and request.method in SAFE_METHODS:
            # Answered here rather than as an uncaught error: __call__ retries the request,
            # and this answer is returned only when the retry cannot happen.
            return HttpResponse(
                "The database is unavailable for a moment. Retry in a few seconds.",
                status=503,
                content_type="text/plain",
                headers={"Retry-After": "2"},
            )
        return None
