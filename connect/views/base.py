"""What every modal view shares: the embedding page's parameters, the template context, the
choice between a whole page and a partial, and the events handed to the embedding page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from connect.events import authorization_event, credential_outcome_event
from connect.messages import say
from connect.session import EMBED_HEADER, SESSION_HEADER, embed_for
from connect.theme import session_theme
from core.conf import conf
from core.validators import origin_of
from integrations.icons import app_icon
from integrations.models import Credential, OAuthAttempt
from integrations.services.verification import VerificationOutcome, VerifyKind


def modal_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    session = request.connect_session
    token = request.connect_token
    embed = embed_for(request)
    headers = {SESSION_HEADER: token}
    if embed.query:
        headers[EMBED_HEADER] = embed.query
    context = {
        "session": session,
        "token": token,
        "theme": session_theme(session),
        "embed": embed,
        "keep": f"?{embed.query}" if embed.query else "",
        "keep_amp": f"&{embed.query}" if embed.query else "",
        "hx_headers": json.dumps(headers),
        "portal_origin": origin_of(conf.BASE_URL) or "",
        "say_popup_title": say("popup_title", app="{app}"),
        "say_popup_opening": say("popup_opening", app="{app}"),
        **extra,
    }
    if "app" in extra and extra["app"] is not None:
        context["icon"] = app_icon(extra["app"])
    return context


def page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str = "view",
    status: int = 200,
) -> HttpResponse:
    """The whole page for a navigation, the named partial for an htmx request."""
    name = f"{template}#{partial}" if request.htmx else template
    return render(request, name, context, status=status)


def prompt(kind: str, text: str) -> dict[str, str]:
    """The modal's own success or failure message (hidden when the SDK asks)."""
    return {"kind": kind, "text": text}


def credential_outcome_prompt(credential: Credential, *, already_exists: bool = False):
    app, who = credential.app.name, credential.display_name
    if credential.status == Credential.Status.ACTIVE:
        if already_exists:
            return prompt("success", say("outcome_already", account=who, app=app))
        return prompt("success", say("outcome_connected", account=who, app=app))
    if credential.status in (Credential.Status.INVALID, Credential.Status.EXPIRED):
        return prompt(
            "error",
            credential.last_verification_error or say("outcome_refused", app=app),
        )
    return None


def check_again_prompt(credential: Credential, outcome: VerificationOutcome) -> dict[str, str]:
    """What "Check again" tells the person: accepted, refused (why), or no answer yet."""
    app = credential.app.name
    if outcome.kind == VerifyKind.VERIFIED:
        return prompt("success", say("checked_ok", app=app, account=credential.display_name))
    if outcome.kind == VerifyKind.UNAVAILABLE:
        return prompt("error", say("check_unavailable", app=app, reason=outcome.reason))
    return prompt("error", outcome.reason or say("outcome_refused", app=app))


@dataclass(frozen=True)
class AttemptSummary:
    credential: Credential | None
    prompt: dict[str, str] | None
    event: dict[str, Any] | None


def attempt_summary(attempt: OAuthAttempt) -> AttemptSummary:
    """What a finished attempt tells the person (the prompt) and the embedding page (event)."""
    if not attempt.is_finished:
        return AttemptSummary(None, None, None)
    flow_id = attempt.flow_id
    credential = attempt.credential
    if credential is not None:
        credential = (
            Credential.objects.select_related("app").filter(pk=credential.pk).first() or credential
        )
    if attempt.outcome == OAuthAttempt.Outcome.CONNECTED and credential is not None:
        event = credential_outcome_event(
            credential, flow_id=flow_id, already_exists=attempt.already_existed
        )
        kind = "success" if credential.status == Credential.Status.ACTIVE else "info"
        return AttemptSummary(credential, prompt(kind, attempt.message), event)
    # A failed reconnect names the account that stayed as it was; a failed connect, none.
    event = authorization_event(
        "did-fail-authorization-verification",
        app_slug=attempt.app.slug,
        credential=credential or attempt.reconnect,
        identity=attempt.identity,
        flow_id=flow_id,
        reason=attempt.error_code or attempt.outcome,
    )
    return AttemptSummary(credential, prompt("error", attempt.message), event)
