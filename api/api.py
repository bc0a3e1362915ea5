"""The server API at /api/v1: tenant-key auth, one error shape, OpenAPI at /api/v1/openapi.json."""

from ninja import NinjaAPI

from api.auth import TenantKeyAuth
from api.errors import install_error_handlers
from api.sessions import router as sessions_router

api = NinjaAPI(
    title="Connect portal API",
    version="1",
    description=(
        "Create connect sessions for your users, and manage their connected accounts, "
        "installations and proxied requests. Authenticate with a tenant secret key as a "
        'Bearer token. Errors are `{"error": {"code", "message"}}`.'
    ),
    urls_namespace="api",
    auth=TenantKeyAuth(),
)
install_error_handlers(api)
api.add_router("", sessions_router)
