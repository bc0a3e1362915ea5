"""An account's flows: switch one on or off, fill its settings, choose its workflows.

Each answer is the flow's card again, with what changed or what is wrong next to the input.
Writes are csrf_exempt for the reason given in ``connect.session``: the
X-Portal-Session header, which a cross-site page cannot send, authorises them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connect.flows.installation import installation_switch
from connect.forms import InstallationSettingsForm, WorkflowsForm
from connect.messages import say
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
    return not_found(request, say("flow_unavailable"))


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


@dataclass(frozen=True)
class InstallationPart:
    """One form of an installed flow's card: how to build it, and the codes of what to say
    (``connect.messages``) once saved or when invalid."""

    prefix: str
    build: Callable[..., forms.Form]
    saved: str
    invalid: str


PARTS = {
    "settings": InstallationPart(
        prefix="settings",
        build=lambda data, entry, prefix_id: InstallationSettingsForm(
            data, installation=entry.installation, prefix_id=prefix_id
        ),
        saved="settings_saved",
        invalid="settings_invalid",
    ),
    "workflows": InstallationPart(
        prefix="workflows",
        build=lambda data, entry, prefix_id: WorkflowsForm(
            data, installation=entry.installation, workflows=entry.workflows, prefix_id=prefix_id
        ),
        saved="workflows_saved",
        invalid="workflows_invalid",
    ),
}


@csrf_exempt
@require_POST
@connect_session_required
def installation_form_view(request: HttpRequest, credential_id, flow_id, part: str) -> HttpResponse:
    """Save one form of an installed flow (its settings, or its workflows): the form validates
    and its ``save()`` calls the flow; the answer is the flow's card again."""
    credential, flow = _resolve(request, credential_id, flow_id)
    if credential is None or flow is None or part not in PARTS:
        return _missing(request)
    spec = PARTS[part]
    key = str(flow.pk)
    entry = _installed_entry(request, credential, flow)
    if entry is None:
        return _card(
            request,
            credential,
            flow,
            bound={("error", key): say("switch_on_first", flow=flow.name)},
            status=422,
        )
    form = spec.build(request.POST, entry, f"{spec.prefix}-{key}")
    saved = form.save(session=request.connect_session) if form.is_valid() else None
    if saved is None:
        return _card(
            request,
            credential,
            flow,
            bound={(spec.prefix, key): form, ("error", key): say(spec.invalid)},
            status=422,
        )
    return _card(request, credential, flow, bound={("note", key): say(spec.saved)})
