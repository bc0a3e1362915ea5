"""The connect modal's views: thin, each parses input, calls a selector or service, renders."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from integrations.connect_session import SESSION_HEADER, connect_session_required
from integrations.selectors import offered_apps_with_credentials
from integrations.theme import session_theme


@require_GET
@connect_session_required
def modal(request: HttpRequest) -> HttpResponse:
    session = request.connect_session
    template = "connect/modal.html#app-list" if request.htmx else "connect/modal.html"
    return render(
        request,
        template,
        {
            "session": session,
            "token": request.connect_token,
            "session_header": SESSION_HEADER,
            "offered": offered_apps_with_credentials(session=session),
            "theme": session_theme(session),
        },
    )
