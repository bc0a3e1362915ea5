"""The trigger URLs: ``/hooks/workflows/<token>``, GET or POST, no API key (the URL is the
secret). The answer is 202 with the queued run, or the API's error shape naming the reason.

The input is the JSON object of a POST body, or the form fields of a POST, or the query
parameters of a GET.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from api.errors import error_response
from api.throttling import rate_window_wait
from core.conf import conf
from core.errors import DomainError
from integrations.services.workflow_triggers import workflow_trigger_fire


def _input(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        return {key: request.GET[key] for key in request.GET}
    if request.content_type == "application/json":
        if not request.body:
            return {}
        try:
            data = json.loads(request.body)
        except ValueError:
            raise DomainError(
                "The body is not JSON; send a JSON object, form fields or nothing.",
                code="invalid_input",
            ) from None
        if not isinstance(data, dict):
            raise DomainError("The JSON body must be an object.", code="invalid_input")
        return data
    return {key: request.POST[key] for key in request.POST}


@csrf_exempt
@require_http_methods(["GET", "POST"])
def workflow_trigger(request: HttpRequest, token: str) -> HttpResponse:
    # Counted per URL before anything is looked up, by a digest: the token never reaches Redis.
    bucket = "trigger-throttle:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    wait = rate_window_wait(bucket, conf.TRIGGER_URL_RATE_LIMIT)
    if wait is not None:
        return error_response(
            429,
            "rate_limited",
            f"This trigger URL was called too often (limit {conf.TRIGGER_URL_RATE_LIMIT}); "
            f"no run was queued. Try again in {wait:g} s.",
            Retry_After=str(int(wait)),
        )
    try:
        run = workflow_trigger_fire(token=token, data=_input(request))
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.fields)
    response = JsonResponse(
        {"run_id": str(run.pk), "status": run.status, "workflow_id": str(run.workflow.public_id)},
        status=202,
    )
    response["Cache-Control"] = "no-store"
    return response
