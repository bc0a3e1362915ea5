"""Managing one connected account: its live status while it is verified, renaming, retrying,
reconnecting (a new secret in place) and disconnecting it, and the flows that use it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from connect.events import credential_outcome_event, publish, refusal_event, removal_event
from connect.flows.account import credential_check_again, credential_disconnect
from connect.forms import CredentialFieldsForm, InstallationSettingsForm, RenameForm, WorkflowsForm
from connect.messages import connection_sentence, say
from connect.session import connect_session_required
from connect.views.base import (
    check_again_prompt,
    credential_outcome_prompt,
    modal_context,
    page,
    prompt,
)
from connect.views.modal import not_found, render_app_panel
from core.errors import DomainError
from integrations.models import Credential
from integrations.selectors import (
    app_names,
    credential_get_for_session,
    flows_for_credential,
)

ACCOUNT_TEMPLATE = "connect/account.html"
LIST_TEMPLATE = "connect/modal.html"
DISCONNECT_TEMPLATE = "connect/disconnect.html"
# Past this, the modal stops polling and says the check goes on in the background.
POLL_PATIENCE_SECONDS = 45


def _credential_or_404(request: HttpRequest, credential_id):
    return credential_get_for_session(session=request.connect_session, credential_id=credential_id)


def _gone(request: HttpRequest) -> HttpResponse:
    return not_found(request, say("account_gone"))


def _attention(flow, installation) -> str:
    """What a breaking update of the flow waits for, in the end user's words, or ''."""
    if installation is None or installation.pending_version_id is None:
        return ""
    missing = installation.needs_action or {}
    properties = (flow.settings_schema or {}).get("properties") or {}
    settings = ", ".join(
        f"“{(properties.get(name) or {}).get('title') or name}”"
        for name in missing.get("settings", [])
    )
    apps = ", ".join(app_names(tenant_id=flow.tenant_id, slugs=missing.get("apps", [])))
    if apps and settings:
        return say("needs_attention_both", flow=flow.name, apps=apps, settings=settings)
    if apps:
        return say("needs_attention_apps", flow=flow.name, apps=apps)
    return say("needs_attention_settings", flow=flow.name, settings=settings)


def flow_cards(request: HttpRequest, credential: Credential, *, bound: dict | None = None):
    """The flows that use the account, each with its installation and forms."""
    bound = bound or {}
    cards = []
    for entry in flows_for_credential(session=request.connect_session, credential=credential):
        installation = entry.installation
        settings_form = workflows_form = None
        key = str(entry.flow.pk)
        if installation is not None:
            settings_form = bound.get(("settings", key)) or InstallationSettingsForm(
                installation=installation, prefix_id=f"settings-{key}"
            )
            if entry.workflows:
                workflows_form = bound.get(("workflows", key)) or WorkflowsForm(
                    installation=installation,
                    workflows=entry.workflows,
                    prefix_id=f"workflows-{key}",
                    initial={"workflows": sorted(entry.enabled_workflow_keys)},
                )
        cards.append(
            {
                "entry": entry,
                "attention": _attention(entry.flow, installation),
                "settings_form": settings_form,
                "workflows_form": workflows_form,
                "note": bound.get(("note", key)),
                "error": bound.get(("error", key)),
            }
        )
    return cards


def render_account(
    request: HttpRequest,
    credential: Credential,
    *,
    rename_form: RenameForm | None = None,
    reconnect_form: CredentialFieldsForm | None = None,
    prompt_: dict | None = None,
    events: list | tuple = (),
    status: int = 200,
) -> HttpResponse:
    app = credential.app
    key = str(credential.pk)
    if reconnect_form is None and not app.is_oauth2:
        reconnect_form = CredentialFieldsForm(
            app=app, with_label=False, prefix_id=f"reconnect-{key}"
        )
    context = modal_context(
        request,
        app=app,
        credential=credential,
        rename_form=rename_form
        or RenameForm(prefix_id=f"rename-{key}", initial={"label": credential.label}),
        reconnect_form=reconnect_form,
        open_reconnect=bool(reconnect_form is not None and reconnect_form.errors),
        cards=flow_cards(request, credential),
        prompt=prompt_,
    )
    return publish(page(request, ACCOUNT_TEMPLATE, context, status=status), list(events))


@require_GET
@connect_session_required
def account(request: HttpRequest, credential_id) -> HttpResponse:
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return _gone(request)
    return render_account(request, credential)


@require_GET
@connect_session_required
def account_status(request: HttpRequest, credential_id) -> HttpResponse:
    """What a "verifying" account polls: the card again, until the provider has answered.

    The answer that ends the wait stops the polling (286) and carries the outcome's event.
    """
    compact = request.GET.get("compact") == "1"
    flow_id = request.GET.get("flow") or None
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return HttpResponseStopPolling("")
    event = credential_outcome_event(credential, flow_id=flow_id)
    outcome_prompt = credential_outcome_prompt(credential)
    pending = credential.status == Credential.Status.PENDING
    waited = (timezone.now() - credential.updated_at).total_seconds()
    if pending and waited <= POLL_PATIENCE_SECONDS:
        return HttpResponse(status=204)  # still verifying: nothing to swap, polling goes on
    response = _status_card(
        request,
        credential,
        compact=compact,
        flow_id=flow_id,
        patience_over=pending and waited > POLL_PATIENCE_SECONDS,
        prompt_=outcome_prompt,
    )
    return publish(_stop(response), [event])


def _status_card(
    request: HttpRequest, credential: Credential, *, compact: bool, prompt_, **extra
) -> HttpResponse:
    """An account's card in the lists (its status, and what can be done about it)."""
    context = modal_context(
        request,
        credential=credential,
        app=credential.app,
        compact=compact,
        prompt=prompt_,
        **extra,
    )
    return render(request, f"{LIST_TEMPLATE}#account-status", context)


def _stop(response: HttpResponse) -> HttpResponse:
    response.status_code = HttpResponseStopPolling.status_code
    return response


# Writes below are csrf_exempt: the modal has no cookie session, so Django's CSRF cookie cannot
# be relied on in a third-party iframe; connect_session_required demands the X-Portal-Session
# header on every write, which a cross-site page cannot send.


@csrf_exempt
@require_POST
@connect_session_required
def account_retry(request: HttpRequest, credential_id) -> HttpResponse:
    """Check a failed API-key account again with the secret it already has."""
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return _gone(request)
    try:
        outcome = credential_check_again(session=request.connect_session, credential=credential)
    except DomainError as exc:
        return render_account(request, credential, prompt_=prompt("error", exc.message))
    current = _credential_or_404(request, credential.pk)
    if current is None:
        return _gone(request)
    response = _status_card(
        request,
        current,
        compact=request.POST.get("compact") == "1",
        prompt_=check_again_prompt(current, outcome),
    )
    return publish(response, [credential_outcome_event(current)])


@csrf_exempt
@require_POST
@connect_session_required
def account_rename(request: HttpRequest, credential_id) -> HttpResponse:
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return _gone(request)
    form = RenameForm(request.POST, prefix_id=f"rename-{credential.pk}")
    renamed = (
        form.save(session=request.connect_session, credential=credential)
        if (form.is_valid())
        else None
    )
    if renamed is None:
        return render_account(
            request,
            credential,
            rename_form=form,
            prompt_=prompt("error", say("rename_failed")),
            status=422,
        )
    return render_account(
        request, renamed, prompt_=prompt("success", say("renamed", account=renamed.display_name))
    )


@csrf_exempt
@require_POST
@connect_session_required
def account_reconnect(request: HttpRequest, credential_id) -> HttpResponse:
    """A new key for an API-key account, kept only if it is the same account at the provider."""
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return _gone(request)
    if credential.app.is_oauth2:
        return render_account(
            request,
            credential,
            prompt_=prompt("error", say("reconnect_by_sign_in", app=credential.app.name)),
            status=422,
        )
    form = CredentialFieldsForm(
        request.POST, app=credential.app, with_label=False, prefix_id=f"reconnect-{credential.pk}"
    )
    connection = (
        form.reconnect(session=request.connect_session, credential=credential)
        if form.is_valid()
        else None
    )
    if connection is None or not connection.ok:
        problems = form.non_field_errors()
        event = refusal_event(connection, app_slug=credential.app.slug, reconnected=credential)
        return render_account(
            request,
            credential,
            reconnect_form=form,
            prompt_=prompt("error", " ".join(problems) if problems else say("check_fields")),
            events=[event],
            status=422,
        )
    current = connection.credential
    return render_account(
        request,
        current,
        prompt_=prompt(
            "success",
            connection_sentence(connection, app=current.app.name, reconnecting=True),
        ),
        events=[credential_outcome_event(current, already_exists=True)],
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
@connect_session_required
def account_disconnect(request: HttpRequest, credential_id) -> HttpResponse:
    """GET asks for confirmation; POST revokes at the provider and removes the account."""
    credential = _credential_or_404(request, credential_id)
    if credential is None:
        return _gone(request)
    if request.method == "GET":
        context = modal_context(
            request,
            credential=credential,
            app=credential.app,
            in_use=[
                card["entry"]
                for card in flow_cards(request, credential)
                if card["entry"].installation is not None
            ],
        )
        return page(request, DISCONNECT_TEMPLATE, context)
    app = credential.app
    name = credential.display_name
    result = credential_disconnect(session=request.connect_session, credential=credential)
    if result.switched_off:
        flows = ", ".join(result.switched_off)
        text = say("disconnected_flows_off", account=name, app=app.name, flows=flows)
    else:
        text = say("disconnected", account=name, app=app.name)
    return render_app_panel(
        request, app, prompt_=prompt("success", text), events=[removal_event(result.event_data)]
    )
