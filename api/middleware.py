"""Unknown paths and methods under /api/ answer in the API's error shape, not as HTML."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from api.errors import error_response

API_PREFIX = "/api/"


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
            # A proxied upstream's answer is returned as the upstream gave it.
            or getattr(response, "portal_upstream", False)
        ):
            return response
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
