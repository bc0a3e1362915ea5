"""The server API at /api/v1: tenant-key auth, one error shape, OpenAPI at /api/v1/openapi.json.

Every operation is rate-limited per API key (``PORTAL_API_RATE_LIMIT``); the POSTs that create
things honour ``Idempotency-Key``.
"""

from typing import Any

from ninja import NinjaAPI

from api.auth import TenantKeyAuth
from api.catalog import router as catalog_router
from api.credentials import router as credentials_router
from api.errors import install_error_handlers
from api.flows import router as flows_router
from api.installations import router as installations_router
from api.proxy import router as proxy_router
from api.schemas import OPEN_PROPERTIES_SCHEMA
from api.sessions import router as sessions_router
from api.throttling import TenantKeyRateThrottle
from api.users import router as users_router
from api.workflows import router as workflows_router

DESCRIPTION = """
Create connect sessions for your users, and manage their connected accounts, installations,
proxied requests and workflow runs.

**Authentication**: a tenant secret key (`cp_sk_…`, from the admin) as a Bearer token:
`Authorization: Bearer cp_sk_…`. Everything you can reach belongs to that key's tenant; another
tenant's object is a 404, exactly like one that does not exist.

**Errors** always have one shape, with a machine-readable `code` and, for input problems, the
fields at fault: `{"error": {"code": "validation_error", "message": "…", "fields": {"email":
"…"}}}`. Statuses: 400, 401, 404, 405, 409, 413, 422, 429, 5xx.

**Rate limits**: per API key (1000 requests a minute unless your deployment says otherwise);
over it the answer is 429 `rate_limited` with `Retry-After` in seconds.

**Idempotency**: the POSTs that create things accept an `Idempotency-Key` header. Retrying with
the same key and body replays the first successful answer (marked `Idempotent-Replayed: true`)
instead of creating twice; the same key with another body is a 422 `idempotency_key_reused`;
while the first request runs, a 409 `idempotency_key_in_progress`. Keys last 24 hours.

**Pagination**: list endpoints answer `{"data": [...], "next_cursor": "..."}`, oldest first;
pass `next_cursor` back as `cursor` until it is `null`.
"""

ERROR_DESCRIPTIONS = {
    400: "The body could not be parsed (not JSON).",
    401: "The API key is missing, wrong or revoked.",
    422: "The input is not valid; `fields` names each problem.",
    429: "Too many requests for this API key; see `Retry-After`.",
}


def _closed_pattern_properties(node: Any) -> None:
    """An object whose keys must match a pattern (``JsonObject``) has no other keys: pydantic
    states the pattern but leaves other keys open, which the validation does not. An input
    marked ``OPEN_PROPERTIES`` takes other keys, checked as free JSON."""
    if isinstance(node, dict):
        if "patternProperties" in node:
            node.setdefault("additionalProperties", False)
        if node.pop("x-open-properties", False):
            node.update(OPEN_PROPERTIES_SCHEMA)
        for value in node.values():
            _closed_pattern_properties(value)
    elif isinstance(node, list):
        for value in node:
            _closed_pattern_properties(value)


class PortalNinjaAPI(NinjaAPI):
    """Documents the errors every operation can answer, in the one error shape.

    The error handlers answer 401, 422 and 429 (and 400 for an unparseable body) on any
    operation, whether or not its route lists them; the schema says so for each.
    """

    def _get_urls(self) -> list:
        # The proxy is the path most calls take: its pattern first, so resolving a proxied
        # call tries no other. No other pattern starts with "proxy/", so none is shadowed.
        urls = super()._get_urls()
        return sorted(urls, key=lambda url: not str(url.pattern).startswith("proxy/"))

    def get_openapi_schema(self, **kwargs: Any):
        schema = super().get_openapi_schema(**kwargs)
        _closed_pattern_properties(schema)
        for methods in schema["paths"].values():
            for operation in methods.values():
                statuses = [401, 422, 429] + ([400] if "requestBody" in operation else [])
                for status in statuses:
                    # A route that lists the status has it under an int key: one key per status
                    # (two would be a duplicate key in the JSON, which Swagger UI refuses).
                    operation["responses"].pop(status, None)
                    operation["responses"].setdefault(
                        str(status),
                        {
                            "description": ERROR_DESCRIPTIONS[status],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorOut"}
                                }
                            },
                        },
                    )
        return schema


api = PortalNinjaAPI(
    title="Connect portal API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    auth=TenantKeyAuth(),
    throttle=[TenantKeyRateThrottle()],
)
install_error_handlers(api)
api.add_router("", sessions_router)
api.add_router("", users_router)
api.add_router("", catalog_router)
api.add_router("", credentials_router)
api.add_router("", installations_router)
api.add_router("", proxy_router)
api.add_router("", flows_router)
api.add_router("", workflows_router)
