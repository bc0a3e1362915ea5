"""The trigger URLs: ``/hooks/workflows/<token>``, GET or POST, no API key (the URL is the
secret). The answer is 202 with the queued run, or the API's error shape naming the reason.

The input is the JSON object of a POST body, or the form fields of a POST, or the query
parameters of a GET.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import error_response
from api.throttling import rate_window_wait
from core.conf import conf
from core.errors import DomainError
from integrations.services.workflow_triggers import workflow_trigger_fire

logger = logging.getLogger(__name__)


def _input(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        return {key: request.GET[key] for key in request.GET}
    if request.content_type == "application/json":
        if not request.body:
            return {}
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError):
            raise DomainError(
                "The body is not JSON; send a JSON object, form fields or nothing.",
                code="invalid_input",
            ) from None
        if not isinstance(data, dict):
            raise DomainError("The JSON body must be an object.", code="invalid_input")
        return data
    return {key: request.POST[key] for key in request.POST}


def _unlogged(response: HttpResponse) -> HttpResponse:
    """Keep Django's request logger from writing this answer's URL, which is the secret: a
    refusal or an error is logged here, by the token's digest, or not at all."""
    response._has_been_logged = True  # read by django.utils.log.log_response
    return response


@csrf_exempt
def workflow_trigger(request: HttpRequest, token: str) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        # Not require_http_methods: its refusal logs the path, which holds the token.
        response = _unlogged(
            error_response(405, "method_not_allowed", "Open a trigger URL with GET or POST.")
        )
        response["Allow"] = "GET, POST"
        return response
    # Counted per URL before anything is looked up, by a digest: the token never reaches Redis.
    digest = hashlib.sha256(token.encode()).hexdigest()
    wait = rate_window_wait(f"trigger-throttle:{digest[:32]}", conf.TRIGGER_URL_RATE_LIMIT)
    if wait is not None:
        return _unlogged(
            error_response(
                429,
                "rate_limited",
                f"This trigger URL was called too often (limit {conf.TRIGGER_URL_RATE_LIMIT}); "
                f"no run was queued. Try again in {wait:g} s.",
                Retry_After=str(int(wait)),
            )
        )
    try:
        run = workflow_trigger_fire(token=token, data=_input(request))
    except DomainError as exc:
        return _unlogged(error_response(exc.status, exc.code, exc.message, exc.fields))
    except Exception:
        logger.exception("The trigger URL whose token's SHA-256 starts %s failed.", digest[:12])
        return _unlogged(
            error_response(
                500,
                "internal_error",
                "The run could not be queued because of an error on our side. It was logged; "
                "try again in a moment.",
            )
        )
    response = JsonResponse(
        {"run_id": str(run.pk), "status": run.status, "workflow_id": str(run.workflow.public_id)},
        status=202,
    )
    response["Cache-Control"] = "no-store"
    return response
