"""The proxy endpoint: ``/api/v1/proxy/{app}/{path}`` in any method, as one connected account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router

from accounts.models import TenantApiKey
from accounts.services.audit import audit_flush_after_response
from api.auth import TenantKeyAuth, request_actor
from api.schemas import Text, errors
from core.conf import conf
from integrations.services.proxy import (
    ProxyCall,
    ProxyLimits,
    proxy_forward,
    proxy_key_and_credential,
)

router = Router(tags=["proxy"])

CREDENTIAL_HEADER = "X-Portal-Credential"
USER_HEADER = "X-Portal-User"
PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# What ``proxy_path_clean`` lets through, for the schema: segments without control characters,
# backslashes or percent-encodings, none of them "." or "..", no empty one but a trailing
# slash, no scheme (no ":" in the first segment). The proxy's own check answers 400 otherwise.
_CHAR = r"[^\x00-\x1f\x7f/\\%]"
_NOT_DOT = r"[^\x00-\x1f\x7f/\\%.]"
_FIRST_CHAR = r"[^\x00-\x1f\x7f/\\%:]"
_FIRST_NOT_DOT = r"[^\x00-\x1f\x7f/\\%.:]"
PROXY_PATH_PATTERN = (
    rf"^(?:{_FIRST_NOT_DOT}{_FIRST_CHAR}*|\.{_FIRST_NOT_DOT}{_FIRST_CHAR}*|\.\.{_FIRST_CHAR}+)"
    rf"(?:/(?:{_NOT_DOT}{_CHAR}*|\.{_NOT_DOT}{_CHAR}*|\.\.{_CHAR}+))*/?$"
)
ProxyPath = Annotated[str, Field(json_schema_extra={"pattern": PROXY_PATH_PATTERN})]

PROXY_DESCRIPTION = f"""
Sends the request to the app's API base URL joined with `path`, as one of the user's connected
accounts, and answers with the upstream's status, body and safe headers (`Content-Type`,
caching, `Retry-After`, rate-limit headers), plus `{CREDENTIAL_HEADER}` naming the account used.

- **Which account**: `{CREDENTIAL_HEADER}: <credential id>`; or name the user with
  `{USER_HEADER}: <your user id>` (or a `user` query parameter when that header is absent; it
  is then not forwarded) and their only usable account for the app is used. None or several:
  422 (`no_credential`, `ambiguous_credential`).
- **Auth**: the account's auth is applied exactly as verification applies it; an OAuth2 token
  due for refresh is refreshed first. Your `Authorization`, `Cookie` and `X-Portal-*` headers
  and hop-by-hop headers are never forwarded.
- **Where**: only under the app's base URL. A path with `..`, an encoded `.`/`/`/`\\`, a
  backslash, a leading `/` or a scheme is a 400 (`invalid_proxy_path`). Redirects are followed
  only while they stay under the base URL; one leaving it is a 502
  (`upstream_redirect_refused`).
- **Limits**: the upstream must answer within {conf.PROXY_READ_TIMEOUT:g} s (else 504
  `upstream_timeout`) with at most {conf.PROXY_MAX_RESPONSE_BYTES // (1024 * 1024)} MB
  (else 502 `upstream_response_too_large`); unreachable is 502 `upstream_unreachable`.
- Every call is in the tenant's audit log with the credential used (never the secret).

An answer with `{CREDENTIAL_HEADER}` came from the upstream, whatever its status; one without
it is the proxy's own, in the API's error shape.
"""

UPSTREAM_RESPONSE = {
    "description": "The upstream's answer, whatever its status and content type.",
    "headers": {
        CREDENTIAL_HEADER: {
            "description": "The credential the call used.",
            "schema": {"type": "string", "format": "uuid"},
        }
    },
    "content": {"*/*": {"schema": {}}},
}


PROXY_OPENAPI_EXTRA = {
    "responses": {"default": UPSTREAM_RESPONSE},
    "parameters": [
        {
            "in": "header",
            "name": CREDENTIAL_HEADER,
            "required": False,
            "description": "The credential id of the account to call as.",
            "schema": {"type": "string", "format": "uuid"},
        },
        {
            "in": "header",
            "name": USER_HEADER,
            "required": False,
            "description": "Your id for the user, when they have one account for the app.",
            "schema": {"type": "string", "maxLength": 255},
        },
    ],
}


def _key_with_credential(request: HttpRequest) -> Callable[[str], TenantApiKey | None]:
    """The API key, and the credential the call names, read in one query.

    The credential is read scoped to the key's tenant (``proxy_key_and_credential``) and kept
    on the request for the view, which runs only once the key has been checked; a call naming
    none, or one that does not fit, takes ``proxy_forward``'s longer way with its precise
    refusals.
    """

    def find(prefix: str) -> TenantApiKey | None:
        api_key, request.proxy_credential = proxy_key_and_credential(
            prefix=prefix,
            credential_id=request.headers.get(CREDENTIAL_HEADER),
            app_slug=request.resolver_match.kwargs.get("app", ""),
        )
        return api_key

    return find


def _limits() -> ProxyLimits:
    return ProxyLimits(
        connect_timeout=conf.PROXY_CONNECT_TIMEOUT,
        read_timeout=conf.PROXY_READ_TIMEOUT,
        max_response_bytes=conf.PROXY_MAX_RESPONSE_BYTES,
        max_redirects=conf.PROXY_MAX_REDIRECTS,
    )


def proxy(request: HttpRequest, app: Text, path: ProxyPath):
    query = [(key, value) for key, values in request.GET.lists() for value in values]
    user = request.headers.get(USER_HEADER)
    if user is None and "user" in request.GET:
        user = request.GET["user"]
        query = [(key, value) for key, value in query if key != "user"]
    result = proxy_forward(
        tenant=request.tenant,
        app_slug=app,
        call=ProxyCall(
            method=request.method,
            path=path,
            query=query,
            headers=dict(request.headers),
            body=request.body,
        ),
        credential_id=request.headers.get(CREDENTIAL_HEADER),
        user_external_id=user,
        actor=request_actor(request),
        limits=_limits(),
        found=getattr(request, "proxy_credential", None),
    )
    response = HttpResponse(result.body, status=result.status_code)
    del response["Content-Type"]
    for name, value in result.headers.items():
        response[name] = value
    response.setdefault("Content-Type", "application/octet-stream")
    response[CREDENTIAL_HEADER] = str(result.credential.pk)
    # The API's middleware reshapes bare 404/405 answers; an upstream's are returned as they are.
    response.portal_upstream = True
    # The call's audit entry is written once the answer is sent, before Django's end-of-request
    # connection check, so it reuses the connection this request has checked already.
    response._resource_closers.append(audit_flush_after_response)
    return response


# One operation per method, so each has its own operationId in the schema.
for _method in PROXY_METHODS:
    router.add_api_operation(
        "/proxy/{app}/{path:path}",
        [_method],
        proxy,
        operation_id=f"proxy_{_method.lower()}",
        response={**errors(400, 404, 413, 422, 502, 504)},
        summary=f"Call an app's API as a connected account ({_method})",
        description=PROXY_DESCRIPTION,
        openapi_extra=PROXY_OPENAPI_EXTRA,
        auth=TenantKeyAuth(find_for=_key_with_credential),
    )
