"""The demo's landing page at ``/``: where each part of the demo is, a fresh session, and a
hand-off link.

Mounted only with the sandbox (dev and tests); production has no page at ``/``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Tenant
from core.conf import conf
from integrations.models import ConnectSession, Deployment
from integrations.services.connect_sessions import connect_session_create
from sandbox.demo import DEMO_TENANT_SLUG, DEMO_USER_ID, demo_handoff_issue


def _demo_end_user():
    tenant = Tenant.objects.filter(slug=DEMO_TENANT_SLUG).first()
    if tenant is None:
        return None
    return tenant.end_users.filter(external_id=DEMO_USER_ID).first()


def _landing(request: HttpRequest, end_user, **extra) -> HttpResponse:
    return render(
        request,
        "sandbox/landing.html",
        {
            "seeded": end_user is not None,
            "end_user": end_user,
            "host_example_url": conf.BASE_URL.replace("127.0.0.1", "localhost", 1)
            + "/sandbox/host-example/",
            **extra,
        },
    )


def _demo_deployment(end_user):
    return (
        Deployment.objects.filter(tenant=end_user.tenant, is_active=True).order_by("name").first()
    )


@require_GET
def demo_landing(request: HttpRequest) -> HttpResponse:
    return _landing(request, _demo_end_user())


@never_cache
@require_POST
def demo_handoff_open(request: HttpRequest) -> HttpResponse:
    """A new single-use hand-off link for the demo's end user, shown to copy (its token exists
    only in this answer)."""
    end_user = _demo_end_user()
    if end_user is None:
        return render(request, "sandbox/host_example_missing.html", status=404)
    issued = demo_handoff_issue(
        tenant=end_user.tenant, end_user=end_user, deployment=_demo_deployment(end_user)
    )
    response = _landing(request, end_user, handoff=issued)
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_POST
def demo_session_open(request: HttpRequest) -> HttpResponse:
    """A new connect session for the demo's end user, opened in this browser."""
    end_user = _demo_end_user()
    if end_user is None:
        return render(request, "sandbox/host_example_missing.html", status=404)
    issued = connect_session_create(
        tenant=end_user.tenant,
        end_user=end_user,
        deployment=_demo_deployment(end_user),
        source=ConnectSession.Source.DEMO,
    )
    return HttpResponseRedirect(issued.url)
