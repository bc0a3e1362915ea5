"""How modal views find their connect session: from the URL, or from the htmx request header.

The session never travels in a cookie, so the modal works in a cross-site iframe whose browser
blocks third-party cookies.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import SessionUnusable, connect_session_for_token
from accounts.services.sessions import connect_session_touch
from accounts.validators import origin_of

SESSION_HEADER = "X-Portal-Session"


def frame_ancestors(session) -> str:
    origins = " ".join(session.tenant.allowed_origins)
    return f"frame-ancestors 'self' {origins}".strip()


def connect_session_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve ``request.connect_session`` or answer with a page saying what happened."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, token: str | None = None, **kwargs) -> HttpResponse:
        token = token or request.headers.get(SESSION_HEADER) or None
        try:
            session = connect_session_for_token(token=token)
        except SessionUnusable as exc:
            response = render(
                request,
                "connect/session_error.html",
                {"problem": exc.problem},
                status=403 if exc.problem.name in {"EXPIRED", "REVOKED"} else 404,
            )
            response["Cache-Control"] = "no-store"
            return response
        request.connect_session = session
        request.connect_token = token
        connect_session_touch(session=session, origin=_embedding_origin(request))
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = frame_ancestors(session)
        response["Cache-Control"] = "no-store"
        response.xframe_options_exempt = True
        return response

    return wrapper


def _embedding_origin(request: HttpRequest) -> str:
    referer = request.headers.get("Referer", "")
    origin = origin_of(referer) if referer else None
    own = origin_of(request.build_absolute_uri("/"))
    return origin if origin and origin != own else ""
