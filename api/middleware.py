"""The edge: input with control characters is refused before it reaches a view, and the API's
unknown paths and methods answer in the API's error shape, not as HTML.

No id, name, slug or URL of ours may contain a control character (PostgreSQL cannot store NUL;
CR/LF split headers and log lines), so the API refuses them in its path, its query string and
any key or string of a JSON body (a tab or a line break is allowed inside a JSON string value,
where it may be text) with a 422 ``invalid_characters`` naming where it was. The API's schemas
say the same of each field (``api.schemas.Text``). A proxied call's query and body are the
upstream's business: only NUL is refused there. Other pages (the modal, the admin) answer a
path or query string with a control character with a plain 400.
"""

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from api.errors import error_response
from core.validators import CONTROL_CHARACTERS, TEXT_CONTROL_CHARACTERS, control_characters_find

API_PREFIX = "/api/"
PROXY_PREFIX = "/api/v1/proxy/"
NUL_ESCAPES = (b"\x00", b"\\u0000")


def _query_items(request: HttpRequest) -> list[str]:
    return [text for key, values in request.GET.lists() for text in (key, *values)]


def _api_bad_characters(request: HttpRequest) -> str | None:
    """Where an API request holds a character it may not: 'path', 'query', a body field."""
    proxied = request.path.startswith(PROXY_PREFIX)
    # A proxied path's other control characters are refused by the proxy, naming the path.
    if "\x00" in request.path or (not proxied and CONTROL_CHARACTERS.search(request.path)):
        return "path"
    for text in _query_items(request):
        if "\x00" in text or (not proxied and CONTROL_CHARACTERS.search(text)):
            return "query"
    if proxied or request.content_type != "application/json":
        return None
    body = request.body
    if any(escape in body for escape in NUL_ESCAPES):
        return "body"
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None  # the view's parser says what is wrong with it
    return control_characters_find(document)


def _page_bad_characters(request: HttpRequest) -> bool:
    # A query value may carry a line break (a provider's error description on a callback).
    return bool(
        CONTROL_CHARACTERS.search(request.path)
        or any(TEXT_CONTROL_CHARACTERS.search(text) for text in _query_items(request))
    )


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_api = request.path.startswith(API_PREFIX)
        if is_api and (where := _api_bad_characters(request)):
            return error_response(
                422,
                "invalid_characters",
                f"The request's {where} contains a control character (such as NUL, CR or LF), "
                "which no id, name or field may contain. Remove it and send the request again.",
                {where: "Contains a control character."},
            )
        if not is_api and _page_bad_characters(request):
            return HttpResponseBadRequest(
                "The address contains a control character (such as NUL, CR or LF). Remove it "
                "and try again.",
                content_type="text/plain; charset=utf-8",
            )
        response = self.get_response(request)
        if (
            not is_api
            or response.get("Content-Type", "").startswith("application/json")
            # A proxied upstream's answer is returned as the upstream gave it.
            or getattr(response, "portal_upstream", False)
        ):
            return response
        if response.status_code >= 500:
            # Raised outside the operation's handlers (authentication, throttling): Django's
            # HTML page would break every client that parses the error shape.
            return error_response(
                500, "server_error", "Something went wrong on our side. Try again."
            )
        if response.status_code == 404:
            return error_response(404, "not_found", f"No API endpoint at {request.path}.")
        if response.status_code == 405:
            allowed = response.get("Allow", "")
            shaped = error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}"
                + (f"; use {allowed}." if allowed else "."),
            )
            if allowed:
                shaped["Allow"] = allowed
            return shaped
        return response
