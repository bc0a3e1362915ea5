"""Running workflows: which installation runs, whether it may, the steps, and the run history.

A run belongs to one installation and uses, for each app its steps call, the credential that
installation uses for the app; that credential id is recorded with the run. Each step is one
request sent through the proxy (``proxy_forward``: base URL only, the account's auth applied and
refreshed when due, SSRF guard, timeouts, size cap, audit log). The run has a time limit: no
step starts after it, and a step waits at most what is left of it.

The history keeps, per step, the request (method, path), the status, the duration and an excerpt
of the answer with the account's secrets redacted; the run keeps the mapped response (also
redacted), the error and the step that failed. ``workflow_run.succeeded`` or
``workflow_run.failed`` goes out in the transaction that records the end.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import jsonschema
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from accounts.selectors import end_user_get
from accounts.services.audit import Actor
from core.conf import conf
from core.errors import DomainError, Invalid, NotFound
from core.redact import REDACTED, redact
from core.validators import CONTROL_CHARACTERS
from integrations.models import (
    Credential,
    Installation,
    InstallationCredential,
    Workflow,
    WorkflowRun,
    WorkflowRunCredential,
    WorkflowRunStep,
)
from integrations.services.events import event_emit
from integrations.services.jobs import workflow_run_enqueue
from integrations.services.proxy import ProxyCall, ProxyLimits, credential_named, proxy_forward
from integrations.services.templating import (
    RenderBudget,
    TemplateTooLarge,
    TemplateValueMissing,
    TemplateValueRefused,
    compile_template,
    render_structure,
)
from integrations.services.workflows import workflow_apps

logger = logging.getLogger(__name__)

# JSON keys whose values are secrets whatever the account: never kept in an excerpt.
SECRET_KEYS = re.compile(
    r"(access_?token|refresh_?token|id_?token|api_?key|apikey|secret|password|passwd|"
    r"authorization|client_secret|private_?key|session_?token)",
    re.IGNORECASE,
)


class WorkflowRefused(Invalid):
    """The workflow may not run for this installation now; the code says why."""


@dataclass(frozen=True)
class RunOutcome:
    run: WorkflowRun

    @property
    def succeeded(self) -> bool:
        return self.run.status == WorkflowRun.Status.SUCCEEDED


# Finding what runs.


def workflow_get(*, tenant: Tenant, workflow_id: Any) -> Workflow | None:
    try:
        public_id = UUID(str(workflow_id))
    except ValueError:
        return None
    return (
        Workflow.objects.select_related("flow", "flow__tenant")
        .filter(public_id=public_id, flow__tenant=tenant)
        .first()
    )


def workflow_get_or_404(*, tenant: Tenant, workflow_id: Any) -> Workflow:
    workflow = workflow_get(tenant=tenant, workflow_id=workflow_id)
    if workflow is None:
        raise NotFound(f"No workflow {workflow_id}.", code="workflow_not_found")
    return workflow


def workflow_installation_choose(
    *, workflow: Workflow, credential_id: str | None, user_external_id: str | None
) -> Installation:
    """The installation a trigger names: the one using ``credential_id``, or the user's only one."""
    tenant = workflow.flow.tenant
    installations = Installation.objects.select_related("end_user", "flow", "tenant").filter(
        tenant=tenant, flow=workflow.flow
    )
    if credential_id:
        credential = credential_named(
            tenant=tenant, credential_id=credential_id, user_external_id=user_external_id
        )
        found = list(installations.filter(credential_links__credential=credential)[:2])
        if not found:
            raise NotFound(
                f"No installation of “{workflow.flow.name}” uses credential {credential_id}.",
                code="not_installed",
            )
        if len(found) > 1:
            # One account shared by two installations (each with its own account for another
            # app): running either would be a guess.
            raise Invalid(
                f"Credential {credential_id} is used by several installations of "
                f"“{workflow.flow.name}”; name the account of another app of the flow, one "
                "that only one installation uses.",
                code="ambiguous_installation",
                fields={"X-Portal-Credential": "Used by several installations."},
            )
        return found[0]
    if not user_external_id:
        raise Invalid(
            "Say which account runs the workflow: send `X-Portal-Credential: <credential id>`, "
            "or `X-Portal-User: <user id>` when the user has one installation of the flow.",
            code="credential_required",
            fields={"X-Portal-Credential": "Required."},
        )
    end_user = end_user_get(tenant=tenant, external_id=user_external_id)
    if end_user is None:
        raise NotFound(f"No user with id “{user_external_id}”.", code="user_not_found")
    found = list(installations.filter(end_user=end_user)[:2])
    if not found:
        raise NotFound(
            f"“{workflow.flow.name}” is not installed for this user.", code="not_installed"
        )
    if len(found) > 1:
        raise Invalid(
            f"“{workflow.flow.name}” is installed several times for this user; name the account "
            "with `X-Portal-Credential`.",
            code="ambiguous_installation",
            fields={"X-Portal-Credential": "Required: several installations."},
        )
    return found[0]


def _links_for(installation: Installation, app_slugs: list[str]) -> dict[str, Credential]:
    links = InstallationCredential.objects.select_related("app", "credential").filter(
        installation=installation, app__slug__in=app_slugs
    )
    return {link.app.slug: link.credential for link in links}


def workflow_definition_for(*, workflow: Workflow, installation: Installation) -> dict[str, Any]:
    """The definition the installation runs: its flow version's, or the live one before the
    flow's first publication."""
    version = installation.flow_version
    if version is None:
        return workflow.definition()
    definition = version.workflows.get(workflow.key)
    if definition is None:
        raise WorkflowRefused(
            f"The workflow “{workflow.name}” is not in version {version.number} of "
            f"“{installation.flow.name}”, which this installation runs.",
            code="workflow_not_in_version",
        )
    return definition


def workflow_run_refusal(
    *, workflow: Workflow, installation: Installation
) -> dict[str, Credential]:
    """The credential for each app the workflow calls, or WorkflowRefused naming the reason."""
    if not workflow.is_enabled:
        raise WorkflowRefused(
            f"The workflow “{workflow.name}” is disabled.", code="workflow_disabled"
        )
    if not installation.enabled:
        raise WorkflowRefused(
            f"The installation of “{installation.flow.name}” for user "
            f"{installation.end_user.external_id} is disabled"
            + (f": {installation.disabled_reason}" if installation.disabled_reason else "."),
            code="installation_disabled",
        )
    if not installation.enabled_workflows.filter(pk=workflow.pk).exists():
        raise WorkflowRefused(
            f"The workflow “{workflow.name}” is switched off in this installation.",
            code="workflow_disabled_for_installation",
        )
    apps = workflow_apps(workflow_definition_for(workflow=workflow, installation=installation))
    links = _links_for(installation, apps)
    for slug in apps:
        credential = links.get(slug)
        if credential is None:
            raise WorkflowRefused(
                f"The installation has no {slug} account; the user must connect one.",
                code="installation_incomplete",
            )
        if credential.status not in Credential.USABLE_STATUSES:
            status = credential.status
            raise WorkflowRefused(
                f"The {slug} account {credential.pk} is {credential.get_status_display().lower()}"
                f" ({status}): the user must connect it again.",
                code=f"credential_{status}",
            )
    return links


def workflow_input_check(*, input_schema: dict, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid("The input must be a JSON object.", code="invalid_input")
    if input_schema:
        problems = {}
        for error in jsonschema.Draft202012Validator(input_schema).iter_errors(data):
            where = ".".join(str(part) for part in error.absolute_path) or "input"
            problems[f"input.{where}" if where != "input" else where] = error.message
        if problems:
            raise Invalid(
                "The input does not match the workflow's input schema: "
                + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                code="invalid_input",
                fields=problems,
            )
    return data


# Starting and executing a run.


@transaction.atomic
def workflow_run_create(
    *,
    workflow: Workflow,
    installation: Installation,
    trigger: str,
    data: dict[str, Any],
    rerun_of: WorkflowRun | None = None,
) -> WorkflowRun:
    """Check that it may run, then record a queued run with the credentials it will use."""
    links = workflow_run_refusal(workflow=workflow, installation=installation)
    definition = workflow_definition_for(workflow=workflow, installation=installation)
    data = workflow_input_check(input_schema=definition.get("input_schema") or {}, data=data)
    version = installation.flow_version
    run = WorkflowRun.objects.create(
        tenant=installation.tenant,
        workflow=workflow,
        installation=installation,
        end_user=installation.end_user,
        flow_version=version.number if version else None,
        trigger=trigger,
        input=data,
        definition=definition,
        rerun_of=rerun_of,
    )
    WorkflowRunCredential.objects.bulk_create(
        WorkflowRunCredential(run=run, app_slug=slug, credential_id=credential.pk)
        for slug, credential in links.items()
    )
    return run


def workflow_run_enqueue_new(
    *,
    workflow: Workflow,
    installation: Installation,
    trigger: str,
    data: dict[str, Any],
    rerun_of: WorkflowRun | None = None,
) -> WorkflowRun:
    """Record a queued run and queue its job once that commits."""
    with transaction.atomic():
        run = workflow_run_create(
            workflow=workflow,
            installation=installation,
            trigger=trigger,
            data=data,
            rerun_of=rerun_of,
        )
        run.queued_at = run.created_at
        run.save(update_fields=["queued_at"])
        workflow_run_enqueue(run_id=run.pk)
    return run


def workflow_run_rerun(*, run: WorkflowRun) -> WorkflowRun:
    """Run a finished run's workflow again for its installation, with the same input."""
    if run.installation is None:
        raise Invalid(
            "The installation of this run no longer exists.", code="installation_not_found"
        )
    return workflow_run_enqueue_new(
        workflow=run.workflow,
        installation=run.installation,
        trigger=WorkflowRun.Trigger.RERUN,
        data=run.input,
        rerun_of=run,
    )


# What a step's template failing to render means, as the run's error code.
RENDER_FAILURES = {
    TemplateValueMissing: "template_value_missing",
    TemplateValueRefused: "invalid_step_input",
    TemplateTooLarge: "rendered_too_large",
}


class _StepFailed(Exception):
    def __init__(self, step: str, code: str, message: str):
        super().__init__(message)
        self.step, self.code, self.message = step, code, message


def redact_value(value: Any, secret_values: tuple[str, ...]) -> Any:
    """A JSON value with secret-named keys and the account's secret values masked."""
    if isinstance(value, (dict, list)) and not _needs_redaction(value, secret_values):
        return value  # one pass over the whole text, not one per string inside
    if isinstance(value, dict):
        return {
            key: REDACTED
            if SECRET_KEYS.search(str(key)) and not isinstance(item, (dict, list))
            else redact_value(item, secret_values)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value(item, secret_values) for item in value]
    if isinstance(value, str):
        return redact(value, secret_values)
    return value


def _needs_redaction(value: Any, secret_values: tuple[str, ...]) -> bool:
    text = json.dumps(value, ensure_ascii=False)
    return bool(SECRET_KEYS.search(text)) or redact(text, secret_values) != text


def _excerpt(parsed: Any, raw: bytes, secret_values: tuple[str, ...]) -> str:
    """The first WORKFLOW_RUN_EXCERPT_CHARS of the answer, redacted. Only a bounded prefix is
    redacted (twice the excerpt: a secret cut at the prefix's end falls outside the excerpt),
    so a large answer costs no more than a small one."""
    limit = conf.WORKFLOW_RUN_EXCERPT_CHARS
    if isinstance(parsed, (dict, list)):
        text = json.dumps(parsed, ensure_ascii=False)
    else:
        text = raw[: limit * 4].decode("utf-8", "replace")
    text = redact(text[: limit * 2], secret_values)
    return text if len(text) <= limit else text[:limit] + "…"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity cannot be stored as jsonb


def _parse(body: bytes, content_type: str) -> Any:
    if "json" in content_type.lower() or body[:1] in (b"{", b"["):
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass
    return body.decode("utf-8", "replace")


def _claim(run_id: Any) -> WorkflowRun | None:
    """Move a queued run to running, once: a second delivery of the same job finds none."""
    claimed = WorkflowRun.objects.filter(pk=run_id, status=WorkflowRun.Status.QUEUED).update(
        status=WorkflowRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    return WorkflowRun.objects.select_related(
        "workflow", "workflow__flow", "installation", "installation__flow", "end_user", "tenant"
    ).get(pk=run_id)


def _run_steps(
    run: WorkflowRun, *, actor: Actor, secrets: list[str], recorded: list[WorkflowRunStep]
) -> Any:
    """Send each step and map the response; ``secrets`` and ``recorded`` fill as it goes."""
    installation = run.installation
    if installation is None:
        raise _StepFailed("", "installation_not_found", "The installation no longer exists.")
    try:
        workflow_run_refusal(workflow=run.workflow, installation=installation)
    except WorkflowRefused as exc:
        raise _StepFailed("", exc.code, exc.message) from None
    used = {link.app_slug: link.credential_id for link in run.credentials_used.all()}
    deadline = time.monotonic() + conf.WORKFLOW_RUN_TIMEOUT_SECONDS
    budget = RenderBudget(conf.WORKFLOW_RENDER_MAX_CHARS)
    context: dict[str, Any] = {"input": run.input, "settings": installation.settings, "steps": {}}
    for position, step in enumerate(run.definition.get("steps", [])):
        name, app_slug = step["name"], step["app"]
        method = str(step.get("method", "GET")).upper()
        record = WorkflowRunStep(
            run=run,
            position=position,
            name=name,
            app_slug=app_slug,
            credential_id=used.get(app_slug),
            method=method,
            path=step["path"][:1000],
        )
        recorded.append(record)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            record.error_code = "workflow_timeout"
            record.error_message = "Not started: the run's time limit was reached."
            raise _StepFailed(
                name,
                "workflow_timeout",
                f"The run reached its time limit of {conf.WORKFLOW_RUN_TIMEOUT_SECONDS:g} s "
                f"before step “{name}”.",
            )
        try:
            path = compile_template(step["path"]).render_path(context)
            query = render_structure(step.get("query", {}), context, budget=budget)
            headers = render_structure(step.get("headers", {}), context, budget=budget)
            body = (
                render_structure(step["body"], context, budget=budget) if "body" in step else None
            )
        except (TemplateValueMissing, TemplateValueRefused, TemplateTooLarge) as exc:
            code = RENDER_FAILURES[type(exc)]
            record.error_code, record.error_message = code, str(exc)[:1000]
            raise _StepFailed(name, code, f"Step “{name}”: {exc}.") from None
        record.path = path[:1000]
        headers = {str(k): _as_text(v) for k, v in headers.items()}
        unsafe = [k for k, v in headers.items() if CONTROL_CHARACTERS.search(v)]
        if unsafe:
            record.error_code = "invalid_step_input"
            record.error_message = f"Header {unsafe[0]} holds a control character."
            raise _StepFailed(
                name,
                "invalid_step_input",
                f"Step “{name}”: the value of header {unsafe[0]} holds a line break or another "
                "control character; headers are one line of text.",
            )
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        started = time.monotonic()
        try:
            result = proxy_forward(
                tenant=run.tenant,
                app_slug=app_slug,
                call=ProxyCall(
                    method=method,
                    path=path,
                    query=[(str(k), _as_text(v)) for k, v in query.items()],
                    headers=headers,
                    body=payload,
                ),
                credential_id=str(used.get(app_slug) or ""),
                user_external_id=run.end_user.external_id if run.end_user else None,
                actor=actor,
                limits=ProxyLimits(
                    connect_timeout=min(conf.PROXY_CONNECT_TIMEOUT, remaining),
                    read_timeout=min(conf.PROXY_READ_TIMEOUT, remaining),
                    max_response_bytes=conf.WORKFLOW_STEP_MAX_RESPONSE_BYTES,
                    max_redirects=conf.PROXY_MAX_REDIRECTS,
                ),
            )
        except DomainError as exc:
            record.duration_ms = round((time.monotonic() - started) * 1000)
            record.error_code, record.error_message = exc.code, exc.message[:1000]
            raise _StepFailed(name, exc.code, f"Step “{name}”: {exc.message}") from None
        record.duration_ms = round((time.monotonic() - started) * 1000)
        secrets.extend(result.secret_values)
        secret_values = tuple(secrets)
        parsed = _parse(result.body, result.headers.get("Content-Type", ""))
        record.status_code = result.status_code
        record.response_excerpt = _excerpt(parsed, result.body, secret_values)
        if result.status_code >= 400:
            record.error_code = "step_failed"
            record.error_message = f"{app_slug} answered {result.status_code}."
            raise _StepFailed(
                name,
                "step_failed",
                f"Step “{name}”: {app_slug} answered {result.status_code}.",
            )
        context["steps"][name] = {
            "status": result.status_code,
            "body": parsed,
            "headers": {k.lower(): v for k, v in result.headers.items()},
        }
    try:
        output = render_structure(run.definition.get("response", {}), context, budget=budget)
    except TemplateTooLarge as exc:
        raise _StepFailed("response", "rendered_too_large", f"Response: {exc}.") from None
    except TemplateValueMissing as exc:
        raise _StepFailed("response", "template_value_missing", f"Response: {exc}.") from None
    return output


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def workflow_run_execute(*, run_id: Any, actor: Actor | None = None) -> WorkflowRun:
    """Execute a queued run (once: a run already claimed is returned as it is)."""
    run = _claim(run_id)
    if run is None:
        return WorkflowRun.objects.get(pk=run_id)
    secrets: list[str] = []
    recorded: list[WorkflowRunStep] = []
    try:
        output = _run_steps(run, actor=actor or Actor.system(), secrets=secrets, recorded=recorded)
    except _StepFailed as failure:
        run.status = WorkflowRun.Status.FAILED
        run.error_code, run.failed_step = failure.code, failure.step[:100]
        run.error_message = redact(failure.message, tuple(secrets))[:1000]
    except Exception:
        # A bug or an answer nothing foresaw: the run ends failed with what it did so far,
        # rather than staying "running" until the recovery sweep calls it interrupted.
        logger.exception("Workflow run %s failed unexpectedly.", run.pk)
        run.status = WorkflowRun.Status.FAILED
        run.error_code = "internal_error"
        run.failed_step = recorded[-1].name[:100] if recorded else ""
        run.error_message = (
            "The run failed on our side, not the app's. It was logged; re-run it, and tell us "
            "if it fails again."
        )
    else:
        run.status = WorkflowRun.Status.SUCCEEDED
        run.output = redact_value(output, tuple(secrets))
    run.finished_at = timezone.now()
    secret_values = tuple(secrets)
    for record in recorded:
        # A path or a template error may quote a value taken from an earlier step's answer.
        record.path = redact(record.path, secret_values)[:1000]
        record.error_message = redact(record.error_message, secret_values)[:1000]
    with transaction.atomic():
        WorkflowRunStep.objects.bulk_create(recorded)
        # Only a run still running ends here: the recovery sweep may have given up on it.
        ended = WorkflowRun.objects.filter(pk=run.pk, status=WorkflowRun.Status.RUNNING).update(
            status=run.status,
            output=run.output,
            error_code=run.error_code,
            error_message=run.error_message,
            failed_step=run.failed_step,
            finished_at=run.finished_at,
        )
        if not ended:
            logger.warning("Workflow run %s finished after it was marked failed.", run.pk)
            return WorkflowRun.objects.get(pk=run.pk)
        event_emit(
            tenant=run.tenant,
            type=f"workflow_run.{run.status}",
            data=workflow_run_event_data(run),
        )
    logger.info(
        "Workflow run %s of workflow %s ended %s%s",
        run.pk,
        run.workflow.public_id,
        run.status,
        f" ({run.error_code} at {run.failed_step or 'start'})" if run.error_code else "",
    )
    return run


def workflow_run_event_data(run: WorkflowRun) -> dict[str, Any]:
    return {
        "run_id": str(run.pk),
        "workflow_id": str(run.workflow.public_id),
        "workflow_key": run.workflow.key,
        "flow_id": str(run.workflow.flow_id),
        "flow_version": run.flow_version,
        "installation_id": str(run.installation_id) if run.installation_id else None,
        "user_id": run.end_user.external_id if run.end_user else None,
        "trigger": run.trigger,
        "status": run.status,
        "credentials": {
            link.app_slug: str(link.credential_id) for link in run.credentials_used.all()
        },
        "error_code": run.error_code,
        "failed_step": run.failed_step,
    }


# Recovery: runs whose job or process was lost.

INTERRUPTED = "run_interrupted"


@dataclass(frozen=True)
class RecoveryResult:
    requeued: int
    failed: int


def workflow_runs_recover(*, now=None) -> RecoveryResult:
    """Queue again the runs whose job was lost before it started (safe: a run is claimed once),
    and mark failed the runs that stopped midway, whose worker or web process ended: their steps
    may have partly run, so they are not run again by themselves (staff can re-run them)."""
    now = now or timezone.now()
    requeue_before = now - timedelta(seconds=conf.PENDING_AFTER_SECONDS)
    stranded_before = now - timedelta(seconds=conf.WORKFLOW_RUN_STRANDED_AFTER_SECONDS)
    unfinished = WorkflowRun.objects.filter(
        status__in=[WorkflowRun.Status.QUEUED, WorkflowRun.Status.RUNNING]
    ).order_by("created_at")
    batch = conf.SWEEP_BATCH_SIZE
    with transaction.atomic():
        lost_jobs = list(
            unfinished.filter(status=WorkflowRun.Status.QUEUED, queued_at__lte=requeue_before)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:batch]
        )
        WorkflowRun.objects.filter(pk__in=lost_jobs).update(queued_at=now)
        for run_id in lost_jobs:
            workflow_run_enqueue(run_id=run_id)
    stranded = list(
        unfinished.filter(
            Q(status=WorkflowRun.Status.RUNNING, started_at__lte=stranded_before)
            | Q(
                status=WorkflowRun.Status.QUEUED,
                queued_at__isnull=True,
                created_at__lte=stranded_before,
            )
        ).values_list("pk", flat=True)[:batch]
    )
    failed = 0
    for run_id in stranded:
        failed += _interrupted(run_id, now=now)
    if lost_jobs or failed:
        logger.warning(
            "Workflow runs recovered: %d queued again, %d marked interrupted.",
            len(lost_jobs),
            failed,
        )
    return RecoveryResult(requeued=len(lost_jobs), failed=failed)


@transaction.atomic
def _interrupted(run_id: Any, *, now) -> int:
    marked = WorkflowRun.objects.filter(
        pk=run_id, status__in=[WorkflowRun.Status.QUEUED, WorkflowRun.Status.RUNNING]
    ).update(
        status=WorkflowRun.Status.FAILED,
        error_code=INTERRUPTED,
        error_message=(
            "The run stopped before it finished: the process running it ended. Its steps may "
            "have partly run; check them, then re-run it if needed."
        ),
        finished_at=now,
    )
    if marked:
        run = WorkflowRun.objects.select_related("workflow", "end_user", "tenant").get(pk=run_id)
        event_emit(
            tenant=run.tenant,
            type=f"workflow_run.{run.status}",
            data=workflow_run_event_data(run),
        )
    return marked


# Retention.


def workflow_runs_purge(*, now=None) -> int:
    """Delete runs older than the retention, in batches; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=conf.WORKFLOW_RUN_RETENTION_DAYS)
    batch = conf.WORKFLOW_RUN_PURGE_BATCH_SIZE
    removed = 0
    for _ in range(conf.SWEEP_MAX_BATCHES):
        ids = list(
            WorkflowRun.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        WorkflowRun.objects.filter(pk__in=ids).delete()
        removed += len(ids)
        if len(ids) < batch:
            break
    return removed
