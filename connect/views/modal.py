"""The modal's pages: the app list (with search and the deep link) and one app's panel, where
an account is connected with the app's form or its sign-in window."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from connect.app_list import app_list_render
from connect.events import credential_outcome_event, publish, refusal_event
from connect.forms import CredentialFieldsForm
from connect.list_page import list_page_html
from connect.messages import say
from connect.session import connect_session_required
from connect.views.base import (
    attempt_summary,
    credential_outcome_prompt,
    modal_context,
    page,
    prompt,
)
from integrations.icons import SVG_TYPE
from integrations.models import App, Credential, OAuthAttempt
from integrations.selectors import (
    app_get_for_session,
    app_icon_file_get,
    flow_get_for_session,
    oauth_attempt_get_for_session,
    offered_app_with_credentials,
)

LIST_TEMPLATE = "connect/modal.html"
APP_TEMPLATE = "connect/app.html"


def not_found(request: HttpRequest, message: str) -> HttpResponse:
    """The list, with a message: what was asked for is not in this session."""
    return render_app_list(request, prompt_=prompt("error", message), status=404)


def render_app_list(
    request: HttpRequest, *, prompt_: dict | None = None, status: int = 200, events=()
) -> HttpResponse:
    query = request.GET.get("q", "")[:100]
    context = modal_context(request, query=query, prompt=prompt_)
    listed = app_list_render(
        session=request.connect_session,
        token=request.connect_token,
        keep=context["keep"],
        query=query,
    )
    context.update(app_items=listed.html, app_count=listed.count)
    if request.htmx and request.htmx.target == "app-list":
        return render(request, f"{LIST_TEMPLATE}#app-list", context, status=status)
    html = list_page_html(request, context)
    if html is not None:
        return publish(HttpResponse(html, status=status), list(events))
    return publish(page(request, LIST_TEMPLATE, context, status=status), list(events))


def flow_from_request(request: HttpRequest, app: App, data=None):
    flow_id = (data or request.GET).get("flow") or request.GET.get("flow")
    if not flow_id:
        return None
    return flow_get_for_session(session=request.connect_session, flow_id=flow_id, app=app)


def render_app_panel(
    request: HttpRequest,
    app: App,
    *,
    form: CredentialFieldsForm | None = None,
    attempt: OAuthAttempt | None = None,
    highlight: Any = None,
    flow=None,
    prompt_: dict | None = None,
    events: list | tuple = (),
    status: int = 200,
    initial_events: list | tuple = (),
) -> HttpResponse:
    """One app: the accounts connected to it, and how to connect (another) one."""
    session = request.connect_session
    item = offered_app_with_credentials(session=session, app=app)
    usable = [c for c in item.credentials if c.status != Credential.Status.REVOKED]
    can_add = session.allow_multiple or not usable
    if form is None and not app.is_oauth2:
        form = CredentialFieldsForm(app=app, prefix_id=f"connect-{app.slug}")
    context = modal_context(
        request,
        app=app,
        item=item,
        form=form,
        can_add=can_add,
        open_form=bool(form is not None and form.is_bound and form.errors) or not usable,
        attempt=attempt,
        highlight=str(highlight) if highlight else "",
        flow=flow,
        prompt=prompt_,
        initial_events=[event for event in initial_events if event],
    )
    return publish(page(request, APP_TEMPLATE, context, status=status), list(events))


@require_GET
@connect_session_required(with_accounts=True)
def modal(request: HttpRequest) -> HttpResponse:
    """The modal's entry: the app list, or straight to one app (``?app=``, the deep link), or
    the outcome of a sign-in that came back by a full-page redirect (``?attempt=``)."""
    session = request.connect_session
    attempt_id = request.GET.get("attempt")
    if attempt_id:
        attempt = oauth_attempt_get_for_session(session=session, attempt_id=attempt_id)
        if attempt is not None:
            summary = attempt_summary(attempt)
            return render_app_panel(
                request,
                attempt.app,
                highlight=summary.credential.pk if summary.credential else None,
                flow=attempt.flow,
                prompt_=summary.prompt,
                initial_events=[summary.event],
            )
    slug = request.GET.get("app")
    if slug:
        app = app_get_for_session(session=session, slug=slug)
        if app is None:
            return not_found(request, say("app_not_offered", slug=slug[:64]))
        return render_app_panel(request, app, flow=flow_from_request(request, app))
    return render_app_list(request)


@require_GET
@connect_session_required
def app_panel(request: HttpRequest, slug: str) -> HttpResponse:
    app = app_get_for_session(session=request.connect_session, slug=slug)
    if app is None:
        return not_found(request, say("app_not_offered", slug=slug[:64]))
    return render_app_panel(request, app, flow=flow_from_request(request, app))


# The modal has no cookie-based session, so Django's CSRF cookie cannot be relied on inside a
# third-party iframe; connect_session_required demands the X-Portal-Session header on writes,
# which a cross-site page cannot send, and that is what protects this view.
@csrf_exempt
@require_POST
@connect_session_required
def credential_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Submit an app's API-key or basic form: checked with the provider, then connected."""
    session = request.connect_session
    app = app_get_for_session(session=session, slug=slug)
    if app is None:
        return not_found(request, say("app_not_offered", slug=slug[:64]))
    flow = flow_from_request(request, app, request.POST)
    if app.is_oauth2:
        return render_app_panel(
            request,
            app,
            flow=flow,
            prompt_=prompt("error", say("oauth2_app", app=app.name)),
            status=422,
        )
    form = CredentialFieldsForm(request.POST, app=app, prefix_id=f"connect-{app.slug}")
    connection = form.save(session=session) if form.is_valid() else None
    flow_id = flow.pk if flow else None
    if connection is None or not connection.ok:
        # Nothing was stored: the person stays in the form, with the reason next to the field.
        problems = form.non_field_errors()
        event = refusal_event(connection, app_slug=app.slug, flow_id=flow_id)
        return render_app_panel(
            request,
            app,
            form=form,
            flow=flow,
            prompt_=prompt(
                "error",
                " ".join(problems) if problems else say("check_fields"),
            ),
            events=[event],
            status=422,
        )
    credential = connection.credential
    return render_app_panel(
        request,
        app,
        highlight=credential.pk,
        flow=flow,
        prompt_=credential_outcome_prompt(credential, already_exists=connection.already_existed),
        events=[
            credential_outcome_event(
                credential, flow_id=flow_id, already_exists=connection.already_existed
            )
        ],
    )


@require_GET
def app_icon_file(request: HttpRequest, app_id: int, digest: str, extension: str) -> HttpResponse:
    """A tenant's uploaded app icon (a PNG, or an SVG sanitised on upload), served so that even
    opened on its own it can run nothing: a sandboxing policy and no content sniffing."""
    app = app_icon_file_get(app_id=app_id, digest=digest)
    expected = "svg" if app is not None and app.icon_file_type == SVG_TYPE else "png"
    if app is None or extension != expected:
        raise Http404("No such icon.")
    response = HttpResponse(bytes(app.icon_file), content_type=app.icon_file_type)
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """A trivial answer from the same server, for load-balancer checks and the benchmark."""
    return HttpResponse("ok", content_type="text/plain")
