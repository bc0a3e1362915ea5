"""The demo's example host page: the tenant's own product, served on a second origin.

Open it at http://localhost:<port>/sandbox/host-example/ while the portal answers at
http://127.0.0.1:<port>: two origins (and two sites), so the page embeds the modal exactly as a
customer's product would, through the SDK, and prints every event it receives. The view plays
the tenant's backend: it computes the user hash and issues a session with the tenant's rights.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.models import Tenant
from accounts.services.tenants import tenant_user_hash
from core.conf import conf
from core.csp import csp_response_update
from core.validators import origin_of
from integrations.models import ConnectSession, Deployment
from integrations.services.connect_sessions import connect_session_create
from sandbox.demo import DEMO_TENANT_SLUG, DEMO_USER_ID


@never_cache
@require_GET
def host_example(request: HttpRequest) -> HttpResponse:
    tenant = Tenant.objects.filter(slug=DEMO_TENANT_SLUG).first()
    end_user = tenant.end_users.filter(external_id=DEMO_USER_ID).first() if tenant else None
    if tenant is None or end_user is None:
        return render(request, "sandbox/host_example_missing.html", status=404)
    deployment = Deployment.objects.filter(tenant=tenant, is_active=True).order_by("name").first()
    page_origin = origin_of(request.build_absolute_uri("/"))
    portal_origin = origin_of(conf.BASE_URL)
    session = connect_session_create(
        tenant=tenant,
        end_user=end_user,
        deployment=deployment,
        source=ConnectSession.Source.DEMO,
    )
    response = render(
        request,
        "sandbox/host_example.html",
        {
            "portal_base_url": conf.BASE_URL,
            "user_id": end_user.external_id,
            "sdk_config": {
                "baseUrl": conf.BASE_URL,
                "sessionUrl": session.url,
                "tenantId": str(tenant.pk),
                "userId": end_user.external_id,
                "hash": tenant_user_hash(tenant=tenant, user_id=end_user.external_id),
                "deploymentId": str(deployment.pk) if deployment else "",
            },
            "same_origin": page_origin == portal_origin,
            "other_origin_url": conf.BASE_URL.replace("127.0.0.1", "localhost", 1) + request.path,
            "page_allowed": page_origin in tenant.allowed_origins,
        },
    )
    # As a tenant's product would: load the SDK from the portal and let it frame the modal.
    return csp_response_update(
        response, {"script-src": [portal_origin], "frame-src": [portal_origin]}
    )
