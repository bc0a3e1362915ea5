"""An account's flows: switch one on or off, fill its settings, choose its workflows.

Each answer is the flow's card again, with what changed or what is wrong next to the input.
Writes are csrf_exempt for the reason given in ``integrations.connect_session``: the
X-Portal-Session header, which a cross-site page cannot send, authorises them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connect.flows.connect import installation_switch
from connect.forms import InstallationSettingsForm, WorkflowsForm
from connect.session import connect_session_required
from connect.views.base import modal_context
from connect.views.credentials import flow_cards
from connect.views.modal import not_found
from core.errors import DomainError
from integrations.selectors import credential_get_for_session, flow_get_for_session

ACCOUNT_TEMPLATE = "connect/account.html"


def _resolve(request: HttpRequest, credential_id, flow_id):
    session = request.connect_session
    credential = credential_get_for_session(session=session, credential_id=credential_id)
    if credential is None:
        return None, None
    flow = flow_get_for_session(session=session, flow_id=flow_id, app=credential.app)
    return credential, flow


def _card(request: HttpRequest, credential, flow, *, bound: dict, status: int = 200):
    key = str(flow.pk)
    card = next(
        (
            card
            for card in flow_cards(request, credential, bound=bound)
            if card["entry"].flow.pk == flow.pk
        ),
        None,
    )
    context = modal_context(request, credential=credential, app=credential.app, card=card)
    response = render(request, f"{ACCOUNT_TEMPLATE}#flow", context, status=status)
    response["X-Portal-Flow"] = key
    return response


def _installed_entry(request: HttpRequest, credential, flow):
    """The flow's card entry for this account, when the flow is installed for it."""
    entry = next(
        (
            card["entry"]
            for card in flow_cards(request, credential)
            if card["entry"].flow.pk == flow.pk
        ),
        None,
    )
    return entry if entry is not None and entry.installation is not None else None


def _missing(request: HttpRequest) -> HttpResponse:
    return not_found(request, "That flow or account is not available here.")


@csrf_exempt
@require_POST
@connect_session_required
def installation_switch_view(request: HttpRequest, credential_id, flow_id) -> HttpResponse:
    credential, flow = _resolve(request, credential_id, flow_id)
    if credential is None or flow is None:
        return _missing(request)
    enabled = request.POST.get("enabled") == "1"
    key = str(flow.pk)
    try:
        _, note = installation_switch(
            session=request.connect_session, flow=flow, credential=credential, enabled=enabled
        )
    except DomainError as exc:
        return _card(request, credential, flow, bound={("error", key): exc.message}, status=422)
    return _card(request, credential, flow, bound={("note", key): note})


@csrf_exempt
@require_POST
@connect_session_required
def installation_settings_view(request: HttpRequest, credential_id, flow_id) -> HttpResponse:
    credential, flow = _resolve(request, credential_id, flow_id)
    if credential is None or flow is None:
        return _missing(request)
    key = str(flow.pk)
    entry = _installed_entry(request, credential, flow)
    if entry is None:
        return _card(
            request,
            credential,
            flow,
            bound={("error", key): f"Switch “{flow.name}” on first."},
            status=422,
        )
    form = InstallationSettingsForm(
        request.POST, installation=entry.installation, prefix_id=f"settings-{key}"
    )
    saved = form.save(session=request.connect_session) if form.is_valid() else None
    if saved is None:
        return _card(
            request,
            credential,
            flow,
            bound={("settings", key): form, ("error", key): "Check the highlighted settings."},
            status=422,
        )
    return _card(request, credential, flow, bound={("note", key): "Settings saved."})


@csrf_exempt
@require_POST
@connect_session_required
def installation_workflows_view(request: HttpRequest, credential_id, flow_id) -> HttpResponse:
    credential, flow = _resolve(request, credential_id, flow_id)
    if credential is None or flow is None:
        return _missing(request)
    key = str(flow.pk)
    entry = _installed_entry(request, credential, flow)
    if entry is None:
        return _card(
            request,
            credential,
            flow,
            bound={("error", key): f"Switch “{flow.name}” on first."},
            status=422,
        )
    form = WorkflowsForm(
        request.POST,
        installation=entry.installation,
        workflows=entry.workflows,
        prefix_id=f"workflows-{key}",
    )
    saved = form.save(session=request.connect_session) if form.is_valid() else None
    if saved is None:
        return _card(
            request,
            credential,
            flow,
            bound={("workflows", key): form, ("error", key): "Those workflows could not be set."},
            status=422,
        )
    return _card(request, credential, flow, bound={("note", key): "Workflows saved."})
