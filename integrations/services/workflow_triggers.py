"""Trigger URLs (Tray's ``triggerUrl``): a secret URL per installation and URL-triggered
workflow; opening it (GET or POST) queues a run.

The URL carries 256 random bits and is stored only as its SHA-256, so it is shown once, when
issued or rotated; rotating makes the old URL stop working at once. A URL that opens a disabled
installation or workflow, or an installation whose account is expired or revoked, is refused
with the reason (in words fit for whoever holds the URL: no user id, account id or staff note)
and runs nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core.conf import conf
from core.errors import Invalid, NotFound
from core.tokens import hash_token, new_token
from integrations.models import Installation, Workflow, WorkflowRun, WorkflowTrigger
from integrations.services.workflow_runs import (
    WorkflowRefused,
    workflow_run_enqueue_new,
    workflow_run_refusal,
)

TOKEN_PREFIX = "wt_"
MAX_TOKEN_LENGTH = 100


TRIGGER_REFUSALS = {
    "workflow_disabled": "This workflow is switched off.",
    "installation_disabled": "This integration is switched off.",
    "workflow_disabled_for_installation": "This workflow is switched off for this integration.",
    "installation_incomplete": "This integration is missing a connected account.",
    "credential_expired": "The account this workflow uses has expired; it must be reconnected.",
    "credential_revoked": "The account this workflow uses was revoked; it must be reconnected.",
    "credential_invalid": "The account this workflow uses is no longer valid; it must be "
    "reconnected.",
    "workflow_not_in_version": "This workflow is not part of the integration's version.",
}


def workflow_trigger_url(token: str) -> str:
    return conf.BASE_URL + reverse("workflow_trigger", args=[token])


def _check_url_trigger(workflow: Workflow) -> None:
    if workflow.trigger != Workflow.Trigger.URL:
        raise Invalid(
            f"The workflow “{workflow.name}” is request-triggered "
            "(POST /api/v1/workflows/{id}/run); it has no trigger URL.",
            code="wrong_trigger",
        )


@transaction.atomic
def workflow_trigger_issue(
    *, workflow: Workflow, installation: Installation
) -> tuple[WorkflowTrigger, str]:
    """Issue the installation's trigger URL for ``workflow``, or rotate it; returns the token
    (shown once)."""
    _check_url_trigger(workflow)
    if (
        installation.flow_id != workflow.flow_id
        or installation.tenant_id != workflow.flow.tenant_id
    ):
        raise NotFound("No such installation of this workflow's flow.", code="not_installed")
    token = new_token(TOKEN_PREFIX, nbytes=32)
    trigger = (
        WorkflowTrigger.objects.select_for_update()
        .filter(installation=installation, workflow=workflow)
        .first()
    )
    if trigger is None:
        try:
            with transaction.atomic():
                trigger = WorkflowTrigger.objects.create(
                    tenant=installation.tenant,
                    installation=installation,
                    workflow=workflow,
                    token_hash=hash_token(token),
                )
            return trigger, token
        except IntegrityError:
            # Issued at the same moment by another request: rotate the one it made.
            trigger = WorkflowTrigger.objects.select_for_update().get(
                installation=installation, workflow=workflow
            )
    trigger.token_hash = hash_token(token)
    trigger.rotated_at = timezone.now()
    trigger.save(update_fields=["token_hash", "rotated_at"])
    return trigger, token


def workflow_trigger_fire(*, token: str, data: dict[str, Any]) -> WorkflowRun:
    """Queue a run for the trigger URL's installation, or refuse naming the reason."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotFound("No such trigger URL.", code="trigger_not_found")
    trigger = (
        WorkflowTrigger.objects.select_related(
            "workflow",
            "workflow__flow",
            "installation",
            "installation__end_user",
            "installation__flow",
            "installation__tenant",
        )
        .filter(token_hash=hash_token(token))
        .first()
    )
    if trigger is None:
        raise NotFound("No such trigger URL (it may have been rotated).", code="trigger_not_found")
    _check_url_trigger(trigger.workflow)
    try:
        workflow_run_refusal(workflow=trigger.workflow, installation=trigger.installation)
    except WorkflowRefused as refused:
        # Whoever holds the URL learns the reason, not the tenant's ids or notes: the details
        # are for the tenant (the API and the admin).
        raise WorkflowRefused(
            TRIGGER_REFUSALS.get(refused.code, "This workflow cannot run now."),
            code=refused.code,
        ) from None
    run = workflow_run_enqueue_new(
        workflow=trigger.workflow,
        installation=trigger.installation,
        trigger=WorkflowRun.Trigger.URL,
        data=data,
    )
    WorkflowTrigger.objects.filter(pk=trigger.pk).update(last_used_at=timezone.now())
    return run
