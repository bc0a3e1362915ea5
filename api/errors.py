"""The API's one error shape: ``{"error": {"code", "message", "fields"?}}``, for every failure."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from core.db import database_error_note
from core.errors import DomainError, Unavailable

logger = logging.getLogger(__name__)


HTTP_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
}


class ErrorDetail(Schema):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorOut(Schema):
    error: ErrorDetail


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, **headers: str
) -> JsonResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    response = JsonResponse({"error": body}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _location(loc: list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "payload", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        fields = {
            _location(error.get("loc", [])): error.get("msg", "Invalid.") for error in exc.errors
        }
        message = "; ".join(f"{field}: {msg}" for field, msg in fields.items())
        return error_response(
            422, "validation_error", f"The request is not valid: {message}", fields
        )

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        problem = getattr(request, "auth_problem", None) or (
            "Missing API key: send 'Authorization: Bearer <your secret key>'."
        )
        return error_response(401, "unauthorized", problem, WWW_Authenticate="Bearer")

    @api.exception_handler(Throttled)
    def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        wait = max(1, int(exc.wait or 1))
        return error_response(
            429,
            "rate_limited",
            f"Too many requests for this API key. Retry in {wait} seconds.",
            Retry_After=str(wait),
        )

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.message
        if exc.status_code == 400 and message == "Cannot parse request body":
            message = (
                "The request body could not be parsed: send JSON with "
                "'Content-Type: application/json'."
            )
        return error_response(exc.status_code, code, message)

    @api.exception_handler(DomainError)
    def domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
        if isinstance(exc, Unavailable):
            return error_response(
                exc.status, exc.code, exc.message, Retry_After=str(exc.retry_after)
            )
        return error_response(exc.status, exc.code, exc.message, exc.fields)

    @api.exception_handler(DjangoValidationError)
    def model_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        if hasattr(exc, "error_dict"):
            fields = {key: " ".join(messages) for key, messages in exc.message_dict.items()}
        else:
            fields = {}
        message = "; ".join(f"{k}: {v}" for k, v in fields.items()) or " ".join(exc.messages)
        return error_response(
            422, "validation_error", f"The request is not valid: {message}", fields or None
        )

    @api.exception_handler(RequestDataTooBig)
    def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(413, "payload_too_large", "The request body is too large.")

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", str(exc) or "Not found.")

    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
        # A lost connection: a safe request is retried once by core.db's middleware.
        database_error_note(request, exc)
        logger.warning("Database error on %s %s: %s", request.method, request.path, exc)
        return error_response(
            503,
            "service_unavailable",
            "The database is unavailable for a moment. Retry in a few seconds.",
            Retry_After="2",
        )

    @api.exception_handler(Exception)
    def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("Unhandled API error on %s %s", request.method, request.path)
        return error_response(500, "server_error", "Something went wrong on our side. Try again.")
