"""The proxy: one request to an app's API as one of an end user's connected accounts.

What it guarantees (Nango's proxy, Paragon's ``request``):
- the request goes only under the app's base URL: the path may not climb out of it (``..``,
  encoded traversal, a backslash, an absolute URL or ``//host`` are refused), and a redirect is
  followed only while it stays under the base URL; one that leaves it is refused;
- the caller's own credentials (Authorization, Cookie, ``X-Portal-*``), hop-by-hop headers and
  forwarding headers are dropped; the account's auth is applied by ``auth_apply``, the one way
  a credential is applied, after ``credential_secret_for_call`` refreshed it when due;
- every call has timeouts and a response size cap; the upstream's status, body and safe headers
  come back;
- the use of the secret and the call's result are one entry in the audit log, by credential,
  never the secret itself;
- the upstream connection comes from the pooled transport of ``core.http`` (kept alive per
  host, SSRF-checked on each new connection, no auth or cookies kept between calls).

Its hot path costs two statements: the API key with the credential the call names, its app and
end user, in one query scoped to the key's tenant (``proxy_key_and_credential``, called by the
API's authentication), and the audit row after the answer. Nothing is cached between calls, so
a revoked key, a disconnected or invalid credential or an edited app shows on the next call.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit
from uuid import UUID

import requests
from django.db import connection
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ReadTimeoutError

from accounts.models import EndUser, Tenant, TenantApiKey
from accounts.selectors import end_user_get
from accounts.services.audit import Actor
from core.errors import DomainError, Invalid, NotFound
from core.http import destination_refused, outbound_request
from core.prepared import SelectedModel
from core.redact import redact_bytes
from integrations.models import App, Credential
from integrations.selectors import app_get_for_tenant, credential_get, credential_get_for_app
from integrations.services.auth import AppliedAuth, TemplateValueMissing, auth_apply
from integrations.services.refresh import credential_secret_for_call
from integrations.services.secrets import Purpose, secret_values

HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
DROPPED_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {
    "authorization",
    "cookie",
    "host",
    "content-length",
    "accept-encoding",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
}
DROPPED_REQUEST_PREFIXES = ("x-portal-",)
RETURNED_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-language",
        "content-disposition",
        "cache-control",
        "etag",
        "last-modified",
        "expires",
        "retry-after",
        "x-request-id",
    }
)
RETURNED_RESPONSE_PREFIXES = ("x-ratelimit-", "ratelimit-")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
ENCODED_TRAVERSAL = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)
SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Characters kept as they are in a forwarded path; everything else is percent-encoded again.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


class ProxyRefused(DomainError):
    """The request itself is not allowed (a path that escapes the base URL)."""

    status = 400


class UpstreamFailed(DomainError):
    """The upstream could not give a usable answer (down, redirected away, too large)."""

    status = 502


class UpstreamTimeout(DomainError):
    status = 504


@dataclass(frozen=True)
class ProxyLimits:
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3


@dataclass(frozen=True)
class ProxyCall:
    """The caller's request, as received."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class ProxyResult:
    status_code: int
    headers: dict[str, str]
    body: bytes
    credential: Credential
    # The account's secret values as sent, for a caller that stores part of the answer (the
    # workflow runs) to redact them; in memory only, never shown (``repr=False``).
    secret_values: tuple[str, ...] = field(default=(), repr=False)


def proxy_path_clean(path: str) -> str:
    """The path to forward, percent-encoded, or ProxyRefused when it could leave the base URL.

    ``path`` arrives decoded once (by the web server), so ``%2e%2e`` is already ``..`` here and
    a remaining ``%2e`` means a double encoding meant to survive until the upstream decodes it.
    """

    def refuse(reason: str) -> ProxyRefused:
        return ProxyRefused(
            f"The proxy path {reason}. Give a path relative to the app's API base URL, such as "
            "`v1/customers`.",
            code="invalid_proxy_path",
            fields={"path": reason},
        )

    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise refuse("contains control characters")
    if "\\" in path:
        raise refuse("contains a backslash")
    if path.startswith("/"):
        raise refuse("starts with '/' (it would name another host as //host)")
    if SCHEME_PREFIX.match(path) or "://" in path:
        raise refuse("is an absolute URL")
    if ENCODED_TRAVERSAL.search(path):
        raise refuse("contains an encoded '.', '/' or '\\'")
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise refuse("contains '.' or '..' segments")
    if any(segment == "" for segment in segments[:-1]):
        raise refuse("contains an empty segment ('//')")
    return quote(path, safe=PATH_SAFE)


def _origin(parts) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def url_within_base(url: str, base_url: str) -> bool:
    """True when ``url`` is on the base URL's origin and under its path, with no way out."""
    target, base = urlsplit(url), urlsplit(base_url)
    if target.scheme not in ("http", "https") or _origin(target) != _origin(base):
        return False
    if target.username or target.password:
        return False
    decoded = unquote(target.path)
    if "\\" in decoded or any(seg in (".", "..") for seg in decoded.split("/")):
        return False
    base_path = base.path.rstrip("/")
    return target.path == base_path or target.path.startswith(base_path + "/")


def credential_named(
    *, tenant: Tenant, credential_id: str, user_external_id: str | None
) -> Credential:
    """The tenant's credential an ``X-Portal-Credential`` header names (and the user, if given).

    Used by the proxy and by workflow triggers: 422 ``invalid_credential_id`` for a value that is
    not a UUID, 404 ``credential_not_found`` for another tenant's or another user's.
    """
    try:
        credential_id = str(UUID(credential_id))
    except ValueError:
        raise Invalid(
            "X-Portal-Credential must be a credential id (a UUID).",
            code="invalid_credential_id",
            fields={"X-Portal-Credential": "Not a UUID."},
        ) from None
    credential = credential_get(tenant=tenant, credential_id=credential_id)
    if credential is None or (
        user_external_id is not None and credential.end_user.external_id != user_external_id
    ):
        raise NotFound(f"No credential {credential_id}.", code="credential_not_found")
    return credential


def proxy_credential_choose(
    *, tenant: Tenant, app: App, credential_id: str | None, user_external_id: str | None
) -> Credential:
    """The account the call uses: the one named, or the user's only usable one for the app."""
    if credential_id:
        credential = credential_named(
            tenant=tenant, credential_id=credential_id, user_external_id=user_external_id
        )
        if credential.app_id != app.pk:
            raise Invalid(
                f"Credential {credential.pk} is a {credential.app.name} account, not {app.name}.",
                code="credential_app_mismatch",
                fields={"X-Portal-Credential": f"Not a {app.slug} credential."},
            )
        return credential
    if not user_external_id:
        raise Invalid(
            "Say which account to use: send `X-Portal-Credential: <credential id>`, or name the "
            "user with `X-Portal-User` (or `?user=`) when they have one account for this app.",
            code="credential_required",
            fields={"X-Portal-Credential": "Required."},
        )
    end_user = end_user_get(tenant=tenant, external_id=user_external_id)
    if end_user is None:
        raise NotFound(f"No user with id “{user_external_id}”.", code="user_not_found")
    candidates = list(
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(tenant=tenant, end_user=end_user, app=app, status__in=Credential.USABLE_STATUSES)
        .order_by("created_at", "pk")[:10]
    )
    if not candidates:
        raise Invalid(
            f"The user has no connected {app.name} account.",
            code="no_credential",
            fields={"X-Portal-Credential": "The user has no account for this app."},
        )
    if len(candidates) > 1:
        raise Invalid(
            f"The user has several {app.name} accounts; choose one with `X-Portal-Credential` "
            f"(one of: {', '.join(str(c.pk) for c in candidates)}).",
            code="ambiguous_credential",
            fields={"X-Portal-Credential": "Required: several accounts."},
        )
    return candidates[0]


def _forwarded_headers(call: ProxyCall, applied_headers: dict[str, str]) -> CaseInsensitiveDict:
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    connection_listed = {
        name.strip().lower()
        for name in call.headers.get("Connection", call.headers.get("connection", "")).split(",")
    }
    for name, value in call.headers.items():
        lowered = name.lower()
        if (
            lowered in DROPPED_REQUEST_HEADERS
            or lowered in connection_listed
            or lowered.startswith(DROPPED_REQUEST_PREFIXES)
        ):
            continue
        headers[name] = value
    for name, value in applied_headers.items():
        headers[name] = value
    return headers


def _with_auth_params(url: str, params: dict[str, str]) -> str:
    """``url`` with the auth query parameters set (replacing any of the same name)."""
    if not params:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _returned_headers(response: requests.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower() in RETURNED_RESPONSE_HEADERS
        or name.lower().startswith(RETURNED_RESPONSE_PREFIXES)
    }


def _read_capped(response: requests.Response, *, app: App, limit: int) -> bytes:
    too_large = UpstreamFailed(
        f"{app.name} answered with more than {limit // (1024 * 1024) or limit} "
        f"{'MB' if limit >= 1024 * 1024 else 'bytes'}, the proxy's response size limit.",
        code="upstream_response_too_large",
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except requests.ConnectionError as exc:
        # requests reports a read timeout in the middle of a body as a connection error.
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise requests.ReadTimeout(str(exc)) from exc
        raise
    return b"".join(chunks)


def _send(
    *, app: App, call: ProxyCall, url: str, applied: AppliedAuth, limits: ProxyLimits
) -> tuple[requests.Response, bytes, int]:
    """Send the call, following redirects only while they stay under the base URL."""
    method, body = call.method.upper(), call.body
    headers = _forwarded_headers(call, applied.headers)
    for hop in range(limits.max_redirects + 1):
        response = outbound_request(
            method,
            url,
            headers=headers,
            data=body or None,
            auth=applied.basic_auth,
            timeout=(limits.connect_timeout, limits.read_timeout),
            allow_redirects=False,
            stream=True,
        )
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            try:
                return (
                    response,
                    _read_capped(response, app=app, limit=limits.max_response_bytes),
                    hop,
                )
            finally:
                response.close()
        response.close()
        target = urljoin(url, location)
        if not url_within_base(target, applied.base_url):
            raise UpstreamFailed(
                f"{app.name} redirected the request outside its API base URL; the proxy does "
                "not follow it.",
                code="upstream_redirect_refused",
            )
        if response.status_code == 303 or (
            response.status_code in (301, 302) and method not in ("GET", "HEAD")
        ):
            method, body = "GET", b""
            headers.pop("Content-Type", None)
        url = _with_auth_params(target, applied.params)
    raise UpstreamFailed(
        f"{app.name} redirected more than {limits.max_redirects} times.",
        code="upstream_too_many_redirects",
    )


@dataclass(frozen=True)
class UpstreamAnswer:
    status_code: int
    headers: dict[str, str]
    body: bytes
    redirects: int


def upstream_call(
    *, app: App, applied: AppliedAuth, call: ProxyCall, limits: ProxyLimits
) -> UpstreamAnswer:
    """Send ``call`` under the app's API base URL with ``applied`` auth; writes nothing.

    The one way a request goes to an app's API for a caller (the proxy; workflow steps): the
    path may not leave the base URL, the caller's credentials and hop-by-hop headers are
    dropped, redirects are followed only under the base URL, the answer is size-capped, and
    the connection comes from the pooled, SSRF-guarded transport (``core.http``). Raises
    ``ProxyRefused``, ``UpstreamFailed`` or ``UpstreamTimeout``, each with its ``code``.
    """
    forwarded_path = proxy_path_clean(call.path)
    base_url = applied.base_url.rstrip("/")
    url = f"{base_url}/{forwarded_path}"
    if not url_within_base(url, base_url):
        raise ProxyRefused(
            "The proxy path leaves the app's API base URL.", code="invalid_proxy_path"
        )
    query = [(k, v) for k, v in call.query if k not in applied.params]
    if query or applied.params:
        url = f"{url}?{urlencode([*query, *applied.params.items()])}"
    try:
        response, body, redirects = _send(
            app=app, call=call, url=url, applied=applied, limits=limits
        )
    except requests.Timeout as exc:
        raise UpstreamTimeout(
            f"{app.name} did not answer within {limits.read_timeout:g} seconds.",
            code="upstream_timeout",
        ) from exc
    except requests.RequestException as exc:
        if refused := destination_refused(exc):
            raise UpstreamFailed(
                f"{app.name}'s API base URL is not allowed: {refused}",
                code="destination_not_allowed",
            ) from exc
        raise UpstreamFailed(
            f"{app.name} could not be reached ({type(exc).__name__}).",
            code="upstream_unreachable",
        ) from exc
    return UpstreamAnswer(
        status_code=response.status_code,
        headers=_returned_headers(response),
        body=body,
        redirects=redirects,
    )


# The proxy's key and credential, in one query: the active key of a prefix with its tenant and,
# when the call names a credential of that tenant that is an account of the app the tenant means
# by the slug (``credential_get_for_app``'s rule: a tenant's own enabled app of that slug
# shadows the catalog's), the credential with its app and end user.
# Only the columns a proxied call reads: each column costs its conversion on every call (a
# timestamp's is Python code). Any other field is deferred and loaded if something reads it.
_KEY = SelectedModel(
    TenantApiKey, "k", ["tenant", "name", "prefix", "key_hash", "last_used_at", "revoked_at"]
)
_TENANT = SelectedModel(Tenant, "t", ["name", "slug", "own_app"])
_CREDENTIAL = SelectedModel(
    Credential,
    "c",
    [
        "tenant",
        "end_user",
        "app",
        "label",
        "identity",
        "status",
        "expires_at",
        "secret_key_id",
        "secret_ciphertext",
    ],
)
_APP = SelectedModel(
    App,
    "a",
    [
        "tenant",
        "slug",
        "name",
        "auth_type",
        "fields",
        "auth_scheme",
        "api_base_url",
        "token_response_fields",
        "request_headers",
        "refresh_buffer_seconds",
        "is_enabled",
    ],
)
_END_USER = SelectedModel(EndUser, "u", ["tenant", "external_id"])
_KEY_AND_CREDENTIAL = f"""
SELECT {_KEY.sql}, {_TENANT.sql}, {_CREDENTIAL.sql}, {_APP.sql}, {_END_USER.sql},
  EXISTS (
    SELECT 1 FROM {App._meta.db_table} own
    WHERE own.tenant_id = k.tenant_id AND own.slug = %(slug)s AND own.is_enabled
      AND own.id <> c.app_id
  )
FROM {TenantApiKey._meta.db_table} k
JOIN {Tenant._meta.db_table} t ON t.id = k.tenant_id
LEFT JOIN (
  {Credential._meta.db_table} c
  JOIN {App._meta.db_table} a ON a.id = c.app_id
  JOIN {EndUser._meta.db_table} u ON u.id = c.end_user_id
) ON c.id = %(credential)s AND c.tenant_id = k.tenant_id
  AND a.slug = %(slug)s AND a.is_enabled AND (a.tenant_id IS NULL OR a.tenant_id = k.tenant_id)
WHERE k.prefix = %(prefix)s AND k.revoked_at IS NULL
"""  # noqa: S608 (names from the models' metadata; every value is a query parameter)


_KEY_TENANT = TenantApiKey._meta.get_field("tenant")
_CREDENTIAL_TENANT = Credential._meta.get_field("tenant")
_CREDENTIAL_APP = Credential._meta.get_field("app")
_CREDENTIAL_END_USER = Credential._meta.get_field("end_user")


def proxy_key_and_credential(
    *, prefix: str, credential_id: str | None, app_slug: str
) -> tuple[TenantApiKey | None, Credential | None]:
    """The active API key of ``prefix`` (its tenant loaded) and, scoped to that key's tenant,
    the credential ``credential_id`` names when it is an account of the app ``app_slug`` means:
    one query, no ORM query building (the proxy's hot path). The key is only found here: the
    caller still compares its secret (``tenant_api_key_authenticate``)."""
    try:
        credential_uuid = UUID(str(credential_id)) if credential_id else None
    except ValueError:
        credential_uuid = None
    with connection.cursor() as cursor:
        cursor.execute(
            _KEY_AND_CREDENTIAL,
            {
                "prefix": prefix,
                # As the database stores it (SQLite: 32 hex digits); a raw UUID binds nowhere.
                "credential": Credential._meta.pk.get_db_prep_value(credential_uuid, connection),
                "slug": app_slug,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    at = 0
    parts = []
    for selected in (_KEY, _TENANT, _CREDENTIAL, _APP, _END_USER):
        parts.append(selected.build(row[at : at + selected.width]))
        at += selected.width
    api_key, tenant, credential, app, end_user = parts
    _KEY_TENANT.set_cached_value(api_key, tenant)  # as select_related does
    if credential is None or row[at]:  # no such account, or the slug means the tenant's app
        return api_key, None
    _CREDENTIAL_TENANT.set_cached_value(credential, tenant)
    _CREDENTIAL_APP.set_cached_value(credential, app)
    _CREDENTIAL_END_USER.set_cached_value(credential, end_user)
    return api_key, credential


def proxy_credential_for_call(
    *,
    tenant: Tenant,
    app_slug: str,
    credential_id: str | None,
    user_external_id: str | None,
    found: Credential | None = None,
) -> tuple[App, Credential]:
    """The app and the account a call uses; no further query when the credential is named and
    fits (``found``: read already with the key, by ``proxy_key_and_credential``), else one."""
    if credential_id:
        if (
            found is not None
            and found.tenant_id == tenant.pk
            and str(found.pk) == str(credential_id).lower()
        ):
            credential = found
        else:
            credential = credential_get_for_app(
                tenant=tenant, app_slug=app_slug, credential_id=credential_id
            )
        if credential is not None and (
            user_external_id is None or credential.end_user.external_id == user_external_id
        ):
            return credential.app, credential
    # The other cases, and every refusal with its precise reason, take the longer way.
    app = app_get_for_tenant(tenant=tenant, slug=app_slug)
    if app is None:
        raise NotFound(f"No app “{app_slug}”.", code="app_not_found")
    credential = proxy_credential_choose(
        tenant=tenant, app=app, credential_id=credential_id, user_external_id=user_external_id
    )
    return app, credential


def proxy_forward(
    *,
    tenant: Tenant,
    app_slug: str,
    call: ProxyCall,
    credential_id: str | None,
    user_external_id: str | None,
    actor: Actor,
    limits: ProxyLimits | None = None,
    found: Credential | None = None,
) -> ProxyResult:
    """Send ``call`` to the app's API as the chosen account and return the upstream's answer.

    ``found``: the named credential, already read with the API key (``proxy_key_and_credential``).
    One audit entry per call (``credential.use.proxy``, with the call's method, path, status or
    error, and duration), written after the response.
    """
    limits = limits or ProxyLimits()
    proxy_path_clean(call.path)  # a bad path is refused before anything is looked up
    app, credential = proxy_credential_for_call(
        tenant=tenant,
        app_slug=app_slug,
        credential_id=credential_id,
        user_external_id=user_external_id,
        found=found,
    )
    if credential.status not in Credential.USABLE_STATUSES:
        raise Invalid(
            f"The {app.name} account {credential.display_name} is "
            f"{credential.get_status_display().lower()}: the user must connect it again.",
            code="credential_unusable",
        )
    credential, use = credential_secret_for_call(
        credential=credential, actor=actor, purpose=Purpose.PROXY
    )
    if credential.status not in Credential.USABLE_STATUSES:
        raise Invalid(
            f"The {app.name} account {credential.display_name} expired and could not be "
            "refreshed: the user must connect it again.",
            code="credential_expired",
        )
    started = time.monotonic()
    detail: dict = {"method": call.method.upper(), "path": "/" + call.path[:500]}
    answer: UpstreamAnswer | None = None
    error = "credential_unusable"
    try:
        try:
            applied = auth_apply(app=app, secret=use.secret)
        except TemplateValueMissing as exc:
            raise Invalid(
                f"The {app.name} account cannot be used: {exc}", code="credential_unusable"
            ) from exc
        answer = upstream_call(app=app, applied=applied, call=call, limits=limits)
    except DomainError as exc:
        error = exc.code
        raise
    finally:
        ok = answer is not None and answer.status_code < 400
        use.record(
            outcome="success" if ok else "failure",
            detail={
                **detail,
                "status_code": answer.status_code if answer else None,
                "error": "" if answer else error,
                "redirects": answer.redirects if answer else 0,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
    body = answer.body
    if answer.status_code >= 400:
        # An upstream refusing a key often quotes it back: its error never carries the secret.
        body = redact_bytes(body, secret_values(app=app, secret=use.secret))
    return ProxyResult(
        status_code=answer.status_code,
        headers=answer.headers,
        body=body,
        credential=credential,
        secret_values=_secret_values(use.secret, applied),
    )


def _secret_values(secret: dict, applied: AppliedAuth) -> tuple[str, ...]:
    values = {value for value in secret.values() if isinstance(value, str)}
    values |= set(applied.headers.values()) | set(applied.params.values())
    if applied.basic_auth:
        username, password = applied.basic_auth
        values |= {password, base64.b64encode(f"{username}:{password}".encode()).decode()}
    # Short values (a version header, "true") would redact ordinary text; secrets are longer.
    return tuple(sorted((value for value in values if len(value) >= 8), key=len, reverse=True))
