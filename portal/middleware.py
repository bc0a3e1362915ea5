"""Security headers that hold for every page the project serves."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class FrameAncestorsMiddleware:
    """Every page refuses to be framed unless its view set its own frame-ancestors (the modal)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = "frame-ancestors 'none'"
        return response
