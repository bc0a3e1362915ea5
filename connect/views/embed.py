"""Entry points for embedding pages that do not call the API first (the user-hash mode)."""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_GET

from connect.session import modal_language
from core.errors import DomainError
from integrations.services.connect_sessions import connect_session_from_user_hash

# Parameters the modal understands, handed through unchanged (the modal validates them).
PASSTHROUGH = ("embed_origin", "hide_prompt", "app", "locale", "close_button")


@require_GET
def user_hash_start(request: HttpRequest) -> HttpResponse:
    try:
        issued = connect_session_from_user_hash(
            tenant_id=request.GET.get("tenant", ""),
            user_id=request.GET.get("user", ""),
            user_hash=request.GET.get("hash", ""),
            deployment_id=request.GET.get("deployment") or None,
        )
    except DomainError as exc:
        with translation.override(modal_language(request)):
            response = render(
                request, "embed/entry_error.html", {"message": exc.message}, status=403
            )
        response["Cache-Control"] = "no-store"
        return response
    extra = {key: request.GET[key] for key in PASSTHROUGH if request.GET.get(key)}
    response = HttpResponseRedirect(issued.url + (f"?{urlencode(extra)}" if extra else ""))
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
