"""How modal views find their connect session: from the URL, or from the htmx request header.

The session never travels in a cookie, so the modal works in a cross-site iframe whose browser
blocks third-party cookies. A request that changes something must also carry the session in the
``X-Portal-Session`` header: browsers never add that header by themselves, and a cross-site page
cannot add it without a CORS preflight we never grant, so the header is what makes the modal's
writes safe from cross-site request forgery (Django's CSRF cookie cannot be relied on inside a
third-party iframe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlencode

from csp.constants import SELF
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import translation
from django.utils.crypto import constant_time_compare

from connect.messages import say
from core.csp import csp_response_replace, csp_response_update
from core.validators import normalise_origin, origin_of
from integrations.selectors import SessionUnusable, connect_session_for_token
from integrations.services.connect_sessions import (
    connect_session_record_open,
    connect_session_touch,
)

SESSION_HEADER = "X-Portal-Session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The embedding parameters ride along on htmx requests in this header, so that links rendered
# by a partial keep them without the page having to be reloaded.
EMBED_HEADER = "X-Portal-Embed"
EMBED_PARAMS = ("embed_origin", "hide_prompt", "locale", "close_button")


@dataclass(frozen=True)
class Embed:
    """The SDK's query parameters: where events may go, whether our prompt is hidden, and
    whether the modal draws its close button ("1" in the SDK's overlay, "0" inline unless the
    page asks; "" when a page frames or opens the modal itself: shown whenever a page did)."""

    origin: str = ""
    hide_prompt: bool = False
    locale: str = ""
    close_button: str = ""

    def params(self) -> dict[str, str]:
        params = {}
        if self.origin:
            params["embed_origin"] = self.origin
        if self.hide_prompt:
            params["hide_prompt"] = "1"
        if self.close_button:
            params["close_button"] = self.close_button
        if self.locale:
            params["locale"] = self.locale
        return params

    @property
    def query(self) -> str:
        return urlencode(self.params())


def _embed_source(request: HttpRequest) -> QueryDict:
    """Where the embedding parameters ride: the query, else the modal's header."""
    if any(key in request.GET for key in EMBED_PARAMS):
        return request.GET
    return QueryDict(request.headers.get(EMBED_HEADER, "")[:1000])


def embed_for(request: HttpRequest) -> Embed:
    """``embed_origin`` counts only when it is one of the tenant's allowed origins. Read once
    per request (several steps of a modal request ask)."""
    cached = getattr(request, "_portal_embed", None)
    if cached is not None:
        return cached
    source = _embed_source(request)
    origin = ""
    raw = source.get("embed_origin", "")
    if raw:
        try:
            normalised = normalise_origin(raw)
        except ValidationError:
            normalised = ""
        if normalised and normalised in request.connect_session.tenant.allowed_origins:
            origin = normalised
    close_button = source.get("close_button", "")
    request._portal_embed = Embed(
        origin=origin,
        hide_prompt=source.get("hide_prompt") == "1",
        locale=supported_language(source.get("locale", "")),
        close_button=close_button if close_button in {"0", "1"} else "",
    )
    return request._portal_embed


def supported_language(code: str) -> str:
    """``code`` as one of LANGUAGES ("fr-CA" -> "fr"), or "" when we do not speak it."""
    if not code or len(code) > 16:
        return ""
    try:
        return translation.get_supported_language_variant(code.strip())
    except LookupError:
        return ""


def modal_language(request: HttpRequest, session=None) -> str:
    """The SDK's ``locale`` option, else the session's ``locale``, else the browser's
    Accept-Language, else English."""
    if session is not None:
        # Only the locale: a page outside the session's views (the OAuth callback) has no
        # connect session on the request to check an embedding origin against.
        chosen = supported_language(_embed_source(request).get("locale", "")) or (
            supported_language(session.locale)
        )
        if chosen:
            return chosen
    return translation.get_language_from_request(request)


def frame_ancestors(session) -> list[str]:
    """Who may frame the modal: the portal itself and the tenant's allowed origins."""
    return [SELF, *session.tenant.allowed_origins]


# Refusals whose page says more than the usual "open it again from the product".
DETAILS = {"session_spent": "session_spent_detail"}


def _refuse(request: HttpRequest, *, code: str, status: int) -> HttpResponse:
    with translation.override(modal_language(request)):
        context = {"title": say(code), "detail": say(DETAILS[code]) if code in DETAILS else ""}
        response = render(request, "connect/session_error.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Vary"] = "Accept-Language"
    return response


def connect_session_required(
    view: Callable[..., HttpResponse] | None = None, *, with_accounts: bool = False
) -> Callable[..., HttpResponse]:
    """Resolve ``request.connect_session`` or answer with a page saying what happened.

    ``with_accounts``: the view lists the end user's accounts; read them with the session
    (``connect_session_for_token``), in the same query where the database allows.
    """
    if view is None:
        return lambda view: connect_session_required(view, with_accounts=with_accounts)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, token: str | None = None, **kwargs) -> HttpResponse:
        header = request.headers.get(SESSION_HEADER) or ""
        if request.method not in SAFE_METHODS and (
            not header or (token and not constant_time_compare(header, token))
        ):
            return _refuse(request, code="session_not_from_window", status=403)
        token = token or header or None
        try:
            session = connect_session_for_token(
                token=token, from_page=bool(header), with_accounts=with_accounts
            )
        except SessionUnusable as exc:
            if exc.session is not None and not header and request.method == "GET":
                _record_open(request, exc.session)
            if getattr(request, "htmx", False):
                # The page is open but its session ended: reloading it shows why, in full.
                response = HttpResponse(status=204)
                response["HX-Refresh"] = "true"
                return response
            return _refuse(
                request,
                code=f"session_{exc.problem.name.lower()}",
                status=403 if exc.problem.name in {"EXPIRED", "REVOKED", "SPENT"} else 404,
            )
        request.connect_session = session
        request.connect_token = token
        # The origin counts only until one is known (connect_session_touch).
        origin = "" if session.used_from_origin else _embedding_origin(request)
        connect_session_touch(session=session, origin=origin)
        if not header and request.method == "GET":
            _record_open(request, session)
        language = modal_language(request, session)
        with translation.override(language):
            response = view(request, *args, **kwargs)
        response["Content-Language"] = language
        response["Vary"] = "Accept-Language"
        csp_response_replace(response, {"frame-ancestors": frame_ancestors(session)})
        # A tenant's logo and favicon, and an app's icon, may be any https URL.
        csp_response_update(response, {"img-src": ["https:"]})
        if embed_for(request).origin:
            # The SDK may have opened the modal as a popup of the tenant's page, which listens
            # to its events: our usual opener policy would cut it off (window.opener null).
            response["Cross-Origin-Opener-Policy"] = "unsafe-none"
        response["Cache-Control"] = "no-store"
        response.xframe_options_exempt = True
        return response

    return wrapper


def _record_open(request: HttpRequest, session) -> None:
    """A browser opened the link (the open page's own requests carry the session header)."""
    connect_session_record_open(session=session, user_agent=request.headers.get("User-Agent", ""))


def _embedding_origin(request: HttpRequest) -> str:
    """The page that opened the modal: the SDK's accepted embed_origin, else the Referer's."""
    accepted = embed_for(request).origin
    if accepted:
        return accepted
    referer = request.headers.get("Referer", "")
    origin = origin_of(referer) if referer else None
    if not origin:
        return ""
    return origin if origin != origin_of(request.build_absolute_uri("/")) else ""
