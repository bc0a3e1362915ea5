"""OAuth2 in the modal: start a sign-in (popup, or full-page redirect when popups are blocked),
wait for it, cancel it, and the callback the provider sends the browser back to.

Providers refuse to be framed, so the sign-in runs in a popup. The modal learns the outcome by
polling the attempt (which works even when the provider's Cross-Origin-Opener-Policy cuts the
popup off from the modal); the callback page also tells the modal through postMessage, checked
against our own origin, so that the answer shows at once where the popup can still reach it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, reswap, retarget, trigger_client_event

from connect.flows.oauth import (
    oauth_attempt_cancel,
    oauth_attempt_expire_if_due,
    oauth_connect_callback,
    oauth_connect_start,
)
from connect.messages import say
from connect.session import connect_session_required, embed_for, modal_language
from connect.theme import session_theme
from connect.views.base import attempt_summary, modal_context, prompt
from connect.views.credentials import render_account
from connect.views.modal import flow_from_request, not_found, render_app_panel
from core.errors import DomainError
from integrations.models import Credential, OAuthAttempt
from integrations.selectors import (
    app_get_for_session,
    credential_get_for_session,
    oauth_attempt_get_for_session,
)

LIST_TEMPLATE = "connect/modal.html"
OPEN_EVENT = "portal-oauth-open"


def _render_finished(request: HttpRequest, attempt: OAuthAttempt) -> HttpResponse:
    """The view the attempt belongs to, showing its outcome; polling stops here."""
    summary = attempt_summary(attempt)
    target = None
    if attempt.purpose == OAuthAttempt.Purpose.RECONNECT and attempt.reconnect_id:
        target = credential_get_for_session(
            session=request.connect_session, credential_id=attempt.reconnect_id
        )
    if target is not None:
        response = render_account(request, target, prompt_=summary.prompt, events=[summary.event])
    else:
        response = render_app_panel(
            request,
            attempt.app,
            highlight=summary.credential.pk if summary.credential else None,
            flow=attempt.flow,
            prompt_=summary.prompt,
            events=[summary.event],
        )
    response.status_code = HttpResponseStopPolling.status_code
    return retarget(reswap(response, "outerHTML"), "#view")


def _reconnect_target(request: HttpRequest, data) -> Credential | None:
    credential_id = data.get("credential")
    if not credential_id:
        return None
    return credential_get_for_session(session=request.connect_session, credential_id=credential_id)


# POST is csrf_exempt: the modal has no cookie session, so Django's CSRF cookie cannot be relied
# on in a third-party iframe; connect_session_required demands the X-Portal-Session header on
# POST, which a cross-site page cannot send. GET is the full-page fallback: a top-level
# navigation that can carry no header, authorised by the session token in its URL.
@csrf_exempt
@require_http_methods(["GET", "POST"])
@connect_session_required
def oauth_start(request: HttpRequest, slug: str) -> HttpResponse:
    """POST: a sign-in for the popup (the answer names the URL to open there). GET: the same,
    as a full-page redirect to the provider, which comes back to the modal afterwards."""
    session = request.connect_session
    app = app_get_for_session(session=session, slug=slug)
    if app is None:
        return not_found(request, say("app_not_offered", slug=slug[:64]))
    data = request.POST if request.method == "POST" else request.GET
    flow = flow_from_request(request, app, data)
    reconnect = _reconnect_target(request, data)
    popup = request.method == "POST"
    if data.get("credential") and reconnect is None:
        gone = say("account_gone_connect_again")
        if popup:
            context = modal_context(request, app=app, start_error=gone)
            return render(request, f"{LIST_TEMPLATE}#oauth-attempt", context, status=422)
        return render_app_panel(request, app, flow=flow, prompt_=prompt("error", gone), status=422)
    try:
        started = oauth_connect_start(
            session=session,
            app=app,
            mode=OAuthAttempt.Mode.POPUP if popup else OAuthAttempt.Mode.REDIRECT,
            flow=flow,
            reconnect=reconnect,
            return_query=embed_for(request).params(),
            session_token=request.connect_token,
        )
    except DomainError as exc:
        if popup:
            context = modal_context(request, app=app, start_error=exc.message)
            return render(request, f"{LIST_TEMPLATE}#oauth-attempt", context, status=422)
        return render_app_panel(
            request, app, flow=flow, prompt_=prompt("error", exc.message), status=422
        )
    if not popup:
        response = HttpResponseRedirect(started.authorization_url)
        response["Referrer-Policy"] = "no-referrer"
        return response
    context = modal_context(request, app=app, attempt=started.attempt)
    response = render(request, f"{LIST_TEMPLATE}#oauth-attempt", context)
    return trigger_client_event(
        response,
        OPEN_EVENT,
        {"url": started.authorization_url, "attempt": str(started.attempt.pk)},
    )


@require_GET
@connect_session_required
def oauth_attempt(request: HttpRequest, attempt_id) -> HttpResponse:
    """What the modal polls while the popup is open: "waiting", then the outcome (286)."""
    attempt = oauth_attempt_get_for_session(session=request.connect_session, attempt_id=attempt_id)
    if attempt is None:
        return HttpResponseStopPolling("")
    attempt = oauth_attempt_expire_if_due(attempt=attempt)
    if attempt.is_finished:
        return _render_finished(request, attempt)
    # Still waiting: nothing to swap (204), and polling goes on.
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
@connect_session_required
def oauth_cancel(request: HttpRequest, attempt_id) -> HttpResponse:
    """The person pressed Cancel, or closed the popup: a later answer will be refused."""
    attempt = oauth_attempt_get_for_session(session=request.connect_session, attempt_id=attempt_id)
    if attempt is None:
        return not_found(request, say("attempt_gone"))
    reason = "closed" if request.POST.get("reason") == "closed" else "cancelled"
    attempt = oauth_attempt_cancel(session=request.connect_session, attempt=attempt, reason=reason)
    return _render_finished(request, attempt)


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Where the provider sends the browser back (in the popup, or the whole window).

    The sign-in window is the person's own browser: its Accept-Language words the outcome, and
    the page speaks the session's language when the session chose one."""
    with translation.override(modal_language(request)):
        result = oauth_connect_callback(params=request.GET.dict())
    if result.return_url:
        response = HttpResponseRedirect(result.return_url)
    else:
        attempt = result.attempt
        theme = session_theme(attempt.session) if attempt is not None else None
        session = attempt.session if attempt is not None else None
        with translation.override(modal_language(request, session)):
            response = render(
                request,
                "connect/oauth_callback.html",
                {"result": result, "attempt": attempt, "theme": theme},
                status=200 if attempt is not None else 400,
            )
    # The URL carried a code and a state: never hand it on, never keep the page.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
