"""The API's edge: unknown paths and methods answer in the API's error shape, not as HTML, and
input with a NUL character is refused before it reaches a view (PostgreSQL cannot store it,
and no id, name or field of ours may contain it)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from api.errors import error_response

API_PREFIX = "/api/"
PROXY_PREFIX = "/api/v1/proxy/"
NUL_ESCAPES = (b"\x00", b"\\u0000")


def _has_nul(request: HttpRequest) -> bool:
    """A NUL in the path, the query string or a JSON body (a proxied body is the upstream's
    business and may be binary)."""
    if "\x00" in request.path or any(
        "\x00" in key or any("\x00" in value for value in values)
        for key, values in request.GET.lists()
    ):
        return True
    if request.path.startswith(PROXY_PREFIX):
        return False
    if request.content_type != "application/json":
        return False
    body = request.body
    return any(escape in body for escape in NUL_ESCAPES)


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX) and _has_nul(request):
            return error_response(
                422,
                "invalid_characters",
                "The request contains a NUL character (\\u0000), which no id, name or field "
                "may contain. Remove it and send the request again.",
            )
        response = self.get_response(request)
        if (
            not request.path.startswith(API_PREFIX)
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
