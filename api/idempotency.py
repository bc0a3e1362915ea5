"""Idempotency keys on the POSTs that create things (Stripe's scheme).

A request with an ``Idempotency-Key`` header claims the key for its tenant. The same key with
the same request (method, path, query and JSON body, whitespace and key order aside) gets the
first response again, marked ``Idempotent-Replayed: true``; with a different request it is a
422 ``idempotency_key_reused``; while the first request is still running, a 409
``idempotency_key_in_progress``. Only a 2xx is stored: a key whose request failed can be used
again. Stored responses expire after ``PORTAL_API_IDEMPOTENCY_TTL`` seconds (a day).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from ninja.decorators import decorate_view

from accounts.models import Tenant
from api.models import IdempotencyKey
from core.conf import conf
from core.errors import Conflict, Invalid
from core.vault import open_secret, seal_secret

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": IDEMPOTENCY_HEADER,
    "required": False,
    "description": (
        "A unique value (e.g. a UUID) per intended creation. Retrying with the same key and the "
        "same body replays the first successful response (with `Idempotent-Replayed: true`) "
        "instead of creating again; a different body with the same key is a 422. Keys are kept "
        "for 24 hours, per tenant."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
    "example": "5f2b8c1e-8d0a-4a43-9d55-1f0f8f6b2c11",
}


def request_fingerprint(request: HttpRequest) -> str:
    """What makes two requests "the same": method, path, query and the JSON body's meaning."""
    body = request.body
    with contextlib.suppress(ValueError):
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    for part in (
        request.method.encode(),
        request.path.encode(),
        "&".join(sorted(request.META.get("QUERY_STRING", "").split("&"))).encode(),
        body,
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _replay(record: IdempotencyKey) -> HttpResponse:
    stored = open_secret(record)
    response = HttpResponse(
        stored["body"].encode(), status=record.status_code, content_type=stored["content_type"]
    )
    response[REPLAYED_HEADER] = "true"
    return response


def idempotency_key_claim(
    *, tenant: Tenant, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyKey | HttpResponse:
    """Claim ``key`` for a request, or answer with the stored response of its first use."""
    now = timezone.now()
    with transaction.atomic():
        record = IdempotencyKey.objects.select_for_update().filter(tenant=tenant, key=key).first()
        if record is not None and record.expires_at <= now:
            record.delete()
            record = None
        if record is None:
            try:
                with transaction.atomic():
                    return IdempotencyKey.objects.create(
                        tenant=tenant,
                        key=key,
                        method=method,
                        path=path[:1000],
                        fingerprint=fingerprint,
                        locked_until=now + timedelta(seconds=conf.API_IDEMPOTENCY_LOCK_SECONDS),
                        expires_at=now + timedelta(seconds=conf.API_IDEMPOTENCY_TTL_SECONDS),
                    )
            except IntegrityError:
                # A concurrent request with the same key inserted first; it decides.
                record = IdempotencyKey.objects.select_for_update().get(tenant=tenant, key=key)
        if record.fingerprint != fingerprint:
            raise Invalid(
                f"This Idempotency-Key was first used for a different request "
                f"({record.method} {record.path} with another body). Use a new key for a new "
                "request.",
                code="idempotency_key_reused",
                fields={IDEMPOTENCY_HEADER: "Already used for a different request."},
            )
        if record.is_complete:
            return _replay(record)
        if record.locked_until > now:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed. Retry in a moment "
                "to get its response.",
                code="idempotency_key_in_progress",
            )
        # The first request died without an answer: this one takes the key over.
        record.locked_until = now + timedelta(seconds=conf.API_IDEMPOTENCY_LOCK_SECONDS)
        record.save(update_fields=["locked_until"])
        return record


def idempotency_key_complete(*, record: IdempotencyKey, response: HttpResponseBase) -> None:
    """Store a 2xx response for replay; after anything else the key is free again."""
    if not (200 <= response.status_code < 300) or not isinstance(response, HttpResponse):
        idempotency_key_release(record=record)
        return
    seal_secret(
        record,
        {
            "body": response.content.decode("utf-8", errors="replace"),
            "content_type": response.get("Content-Type", "application/json"),
        },
    )
    record.status_code = response.status_code
    record.save(update_fields=["secret_key_id", "secret_ciphertext", "status_code"])


def idempotency_key_release(*, record: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=record.pk, status_code__isnull=True).delete()


def idempotency_keys_purge_expired(*, batch_size: int = 1000) -> int:
    """Delete expired keys in batches; returns how many went."""
    removed = 0
    while True:
        batch = list(
            IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).values_list(
                "pk", flat=True
            )[:batch_size]
        )
        if not batch:
            return removed
        removed += IdempotencyKey.objects.filter(pk__in=batch).delete()[0]


def _store_after_run(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wraps the whole operation, so the stored response is the one the client received."""

    @wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            response = run(request, *args, **kwargs)
        except BaseException:
            if (record := getattr(request, "_idempotency_key", None)) is not None:
                idempotency_key_release(record=record)
            raise
        if (record := getattr(request, "_idempotency_key", None)) is not None:
            idempotency_key_complete(record=record, response=response)
        return response

    return wrapper


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Make a create endpoint honour ``Idempotency-Key``. Put it under ``@router.post(...)``,
    with ``openapi_extra={"parameters": [IDEMPOTENCY_PARAMETER]}`` on the route."""

    @wraps(view)
    def handler(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        if not KEY_PATTERN.fullmatch(key):
            raise Invalid(
                "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID.",
                code="invalid_idempotency_key",
                fields={IDEMPOTENCY_HEADER: "1 to 255 visible ASCII characters."},
            )
        claimed = idempotency_key_claim(
            tenant=request.tenant,
            key=key,
            method=request.method,
            path=request.path,
            fingerprint=request_fingerprint(request),
        )
        if isinstance(claimed, HttpResponse):
            return claimed
        request._idempotency_key = claimed
        return view(request, *args, **kwargs)

    # ninja reads the signature to parse input; resolve it here, where the view's module is known.
    handler.__signature__ = inspect.signature(view, eval_str=True)
    decorate_view(_store_after_run)(handler)
    return handler
