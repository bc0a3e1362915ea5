"""Installations: an end user's instances of a tenant's flows, and the accounts they use.

Rules (Paragon's install/uninstall, Tray's solution instances):
- a flow can be installed when it is published inside an active deployment of the tenant;
- without ``allow_multiple`` a second install of the same flow is a conflict, unless it names a
  new credential, which then replaces the account and keeps the settings and workflows;
- with ``allow_multiple`` another installation for another account is allowed;
- an installation is enabled only while every app of its flow has a usable credential;
- publishing a flow makes a frozen version. An installation moves to it at once when it adds
  no app and no required setting the installation lacks (a lazy update: ``installation.updated``);
  otherwise it stays on its version, runs it, and is marked as needing the end user's action
  (``installation.needs_update``) until the missing account or setting is given, which moves it.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from django.db import transaction
from django.utils import timezone

from accounts.models import EndUser
from accounts.services.audit import Actor, audit_record
from core.errors import Conflict, Invalid, NotFound
from integrations.models import (
    Credential,
    Flow,
    FlowVersion,
    Installation,
    InstallationCredential,
    Workflow,
)
from integrations.services.events import event_emit
from integrations.services.workflows import workflow_definition_check


def installation_event_data(installation: Installation, **extra: Any) -> dict[str, Any]:
    return {
        "installation_id": str(installation.pk),
        "flow_id": str(installation.flow_id),
        "flow_name": installation.flow.name,
        "flow_version": installation.flow_version.number if installation.flow_version else None,
        "user_id": installation.end_user.external_id,
        "enabled": installation.enabled,
        "credentials": {
            link.app.slug: str(link.credential_id) for link in installation.credential_links.all()
        },
        **extra,
    }


def _record(
    installation: Installation,
    *,
    actor: Actor,
    action: str,
    event_type: str,
    credential: Credential | None = None,
) -> None:
    """The change's audit entry and its outbox event (call inside the change's transaction)."""
    audit_record(
        tenant=installation.tenant,
        actor=actor,
        action=action,
        credential=credential,
        target=str(installation.pk),
    )
    event_emit(
        tenant=installation.tenant,
        type=event_type,
        data=installation_event_data(installation),
    )


def settings_validate(*, schema: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Fill the schema's defaults, then validate; errors name each field."""
    if not isinstance(settings, dict):
        raise Invalid("Settings must be an object.", code="invalid_settings")
    schema = schema or {}
    values = settings_with_defaults(schema=schema, settings=settings)
    if schema:
        errors = {}
        for error in jsonschema.Draft202012Validator(schema).iter_errors(values):
            where = ".".join(str(part) for part in error.absolute_path)
            if error.validator == "required":
                where = error.message.split("'")[1] if "'" in error.message else where
            errors[where or "settings"] = error.message
        if errors:
            raise Invalid(
                "The settings are not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                code="invalid_settings",
                fields=errors,
            )
    return values


def _flow_installable(end_user: EndUser, flow: Flow) -> None:
    if flow.tenant_id != end_user.tenant_id:
        raise NotFound("No such flow.", code="not_found")
    available = Flow.objects.filter(
        pk=flow.pk, status=Flow.Status.PUBLISHED, deployments__is_active=True
    ).exists()
    if not available:
        raise Invalid(
            f"The flow “{flow.name}” is not published in an active deployment.",
            code="flow_not_available",
        )


def _check_credential(end_user: EndUser, flow: Flow, credential: Credential) -> None:
    if credential.end_user_id != end_user.pk:
        raise NotFound("No such credential for this user.", code="not_found")
    if not flow.apps.filter(pk=credential.app_id).exists():
        raise Invalid(
            f"The flow “{flow.name}” does not use {credential.app.name}.",
            code="credential_app_mismatch",
        )
    if credential.status not in Credential.USABLE_STATUSES:
        raise Invalid(
            f"The {credential.app.name} account {credential.display_name} is "
            f"{credential.get_status_display().lower()}: reconnect it first.",
            code="credential_unusable",
        )


def _waiting_for(existing: list[Installation], credential: Credential) -> Installation | None:
    """Of the end user's installations of a flow, the one with no usable account for the
    credential's app: one waiting for a version update first, then the oldest."""
    waiting = [
        installation
        for installation in existing
        if not any(
            link.app_id == credential.app_id
            and link.credential.status in Credential.USABLE_STATUSES
            for link in installation.credential_links.all()
        )
    ]
    waiting.sort(key=lambda inst: (inst.pending_version_id is None, inst.created_at))
    return waiting[0] if waiting else None


def _apps_needing_accounts(flow: Flow):
    """The flow's apps an end user must connect: all but the tenant's own product."""
    return (
        flow.apps.exclude(pk=flow.tenant.own_app_id) if flow.tenant.own_app_id else flow.apps.all()
    )


def _is_complete(installation: Installation) -> bool:
    app_ids = set(_apps_needing_accounts(installation.flow).values_list("pk", flat=True))
    linked = set(
        installation.credential_links.filter(
            credential__status__in=Credential.USABLE_STATUSES
        ).values_list("app_id", flat=True)
    )
    return app_ids <= linked


def _link(installation: Installation, credential: Credential) -> None:
    InstallationCredential.objects.update_or_create(
        installation=installation, app_id=credential.app_id, defaults={"credential": credential}
    )


@transaction.atomic
def installation_install(
    *,
    end_user: EndUser,
    flow: Flow,
    credential: Credential | None = None,
    allow_multiple: bool = False,
    settings: dict[str, Any] | None = None,
    actor: Actor,
) -> tuple[Installation, bool]:
    """Install ``flow`` for ``end_user``. Returns the installation and whether it is new."""
    _flow_installable(end_user, flow)
    if credential is not None:
        _check_credential(end_user, flow, credential)
    # Lock the end user's row so two concurrent installs of one flow serialise.
    EndUser.objects.select_for_update().filter(pk=end_user.pk).first()
    existing = list(
        Installation.objects.filter(end_user=end_user, flow=flow).prefetch_related(
            "credential_links__credential"
        )
    )
    if existing:
        using = [
            inst
            for inst in existing
            if credential is not None
            and any(link.credential_id == credential.pk for link in inst.credential_links.all())
        ]
        if using:
            raise Conflict(
                f"“{flow.name}” is already installed with this account.", code="already_installed"
            )
        waiting = _waiting_for(existing, credential) if credential is not None else None
        if waiting is not None:
            # An installation that has no account for this app yet (a new version added the
            # app, or its account was removed) takes this one, rather than a second install.
            installation_credential_replace(
                installation=waiting, credential=credential, actor=actor
            )
            return waiting, False
        if not allow_multiple:
            if credential is None:
                raise Conflict(
                    f"“{flow.name}” is already installed for this user. Pass allow_multiple to "
                    "install it again for another account, or a credential_id to switch accounts.",
                    code="already_installed",
                )
            installation = existing[0]
            installation_credential_replace(
                installation=installation, credential=credential, actor=actor
            )
            return installation, False

    version = flow_version_current(flow=flow, actor=actor)
    installation = Installation.objects.create(
        tenant_id=end_user.tenant_id,
        end_user=end_user,
        flow=flow,
        flow_version=version,
        settings=settings_validate(schema=version.settings_schema, settings=settings or {}),
    )
    installation.enabled_workflows.set(flow.workflows.filter(enabled_by_default=True))
    chosen = {credential.app_id: credential} if credential is not None else {}
    for app in _apps_needing_accounts(flow):
        if app.pk in chosen:
            _link(installation, chosen[app.pk])
            continue
        candidates = list(
            Credential.objects.filter(end_user=end_user, app=app, status=Credential.Status.ACTIVE)[
                :2
            ]
        )
        if len(candidates) == 1:
            _link(installation, candidates[0])
    installation.enabled = _is_complete(installation)
    installation.save(update_fields=["enabled"])
    _record(
        installation, actor=actor, action="installation.create", event_type="installation.created"
    )
    return installation, True


@transaction.atomic
def installation_credential_replace(
    *, installation: Installation, credential: Credential, actor: Actor
) -> Installation:
    """Use another account for one app of the installation; settings and workflows stay."""
    _check_credential(installation.end_user, installation.flow, credential)
    _link(installation, credential)
    installation.disabled_reason = ""
    installation.enabled = installation.enabled or _is_complete(installation)
    installation.save(update_fields=["disabled_reason", "enabled", "updated_at"])
    _record(
        installation,
        actor=actor,
        action="installation.credential_replace",
        event_type="installation.updated",
        credential=credential,
    )
    installation_pending_update_apply(installation=installation, actor=actor)
    return installation


@transaction.atomic
def installation_set_enabled(
    *, installation: Installation, enabled: bool, actor: Actor
) -> Installation:
    if enabled and not _is_complete(installation):
        missing = _apps_needing_accounts(installation.flow).exclude(
            pk__in=installation.credential_links.filter(
                credential__status__in=Credential.USABLE_STATUSES
            ).values("app_id")
        )
        names = ", ".join(app.name for app in missing)
        raise Invalid(
            f"Connect an account for {names} before switching “{installation.flow.name}” on.",
            code="installation_incomplete",
        )
    if installation.enabled != enabled:
        installation.enabled = enabled
        installation.disabled_reason = ""
        installation.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        _record(
            installation,
            actor=actor,
            action="installation.enable" if enabled else "installation.disable",
            event_type="installation.enabled" if enabled else "installation.disabled",
        )
    return installation


@transaction.atomic
def installation_update(
    *,
    installation: Installation,
    settings: dict[str, Any] | None = None,
    enabled_workflows: list[str] | None = None,
    actor: Actor,
) -> Installation:
    """Change settings and which workflows run. Settings are validated against the version
    the installation runs, or the one it is waiting to move to (not the flow's unpublished
    draft)."""
    _lock(installation)
    if settings is not None:
        version = installation.pending_version or installation.flow_version
        schema = version.settings_schema if version else installation.flow.settings_schema
        installation.settings = settings_validate(schema=schema, settings=settings)
        installation.save(update_fields=["settings", "updated_at"])
    if enabled_workflows is not None:
        workflows = {wf.key: wf for wf in Workflow.objects.filter(flow=installation.flow)}
        unknown = sorted(set(enabled_workflows) - set(workflows))
        if unknown:
            raise Invalid(
                f"“{installation.flow.name}” has no workflow {', '.join(unknown)}.",
                code="unknown_workflow",
                fields={"enabled_workflows": f"Unknown: {', '.join(unknown)}"},
            )
        installation.enabled_workflows.set([workflows[key] for key in enabled_workflows])
        Installation.objects.filter(pk=installation.pk).update(updated_at=timezone.now())
    _record(
        installation, actor=actor, action="installation.update", event_type="installation.updated"
    )
    installation_pending_update_apply(installation=installation, actor=actor)
    return installation


@transaction.atomic
def installation_uninstall(
    *, end_user: EndUser, flow: Flow, credential: Credential | None = None, actor: Actor
) -> int:
    """Remove the user's installations of ``flow``, or only the one using ``credential``."""
    installations = Installation.objects.filter(end_user=end_user, flow=flow)
    if credential is not None:
        installations = installations.filter(credential_links__credential=credential)
    removed = list(
        installations.select_related("flow", "end_user", "tenant").prefetch_related(
            "credential_links__app"
        )
    )
    if not removed:
        raise NotFound(f"“{flow.name}” is not installed for this user.", code="not_installed")
    for installation in removed:
        _record(
            installation,
            actor=actor,
            action="installation.delete",
            event_type="installation.deleted",
        )
    Installation.objects.filter(pk__in=[i.pk for i in removed]).delete()
    return len(removed)


# Flow versions.


def flow_snapshot(flow: Flow) -> dict[str, Any]:
    """What a version freezes: the apps, the settings schema and every workflow's definition."""
    return {
        "apps": sorted(flow.apps.values_list("slug", flat=True)),
        "settings_schema": flow.settings_schema or {},
        "workflows": {workflow.key: workflow.definition() for workflow in flow.workflows.all()},
    }


def installation_missing(*, installation: Installation, version: FlowVersion) -> dict[str, list]:
    """What ``version`` adds that the installation lacks: accounts for new apps, values for new
    required settings (relative to the version it is on)."""
    current = installation.flow_version
    old_apps = set(current.apps) if current else set(version.apps)
    old_required = current.required_settings() if current else version.required_settings()
    own = installation.flow.tenant.own_app
    linked = set(
        installation.credential_links.filter(
            credential__status__in=Credential.USABLE_STATUSES
        ).values_list("app__slug", flat=True)
    )
    new_apps = set(version.apps) - old_apps - ({own.slug} if own else set())
    values = settings_with_defaults(schema=version.settings_schema, settings=installation.settings)
    return {
        "apps": sorted(new_apps - linked),
        "settings": sorted((version.required_settings() - old_required) - set(values)),
    }


def settings_with_defaults(*, schema: dict, settings: dict[str, Any]) -> dict[str, Any]:
    values = dict(settings or {})
    for name, spec in ((schema or {}).get("properties") or {}).items():
        if name not in values and isinstance(spec, dict) and "default" in spec:
            values[name] = spec["default"]
    return values


def _move(installation: Installation, version: FlowVersion, *, actor: Actor) -> None:
    before = installation.flow_version
    added = set(version.workflows) - set(before.workflows) if before else set()
    installation.flow_version = version
    installation.pending_version = None
    installation.needs_action = {}
    installation.settings = settings_with_defaults(
        schema=version.settings_schema, settings=installation.settings
    )
    installation.save(
        update_fields=["flow_version", "pending_version", "needs_action", "settings", "updated_at"]
    )
    # Workflows new in this version start as their default says; the others keep their choice.
    installation.enabled_workflows.add(
        *Workflow.objects.filter(
            flow=installation.flow, enabled_by_default=True, key__in=sorted(added)
        )
    )
    _record(
        installation,
        actor=actor,
        action="installation.version_update",
        event_type="installation.updated",
    )


def flow_version_current(*, flow: Flow, actor: Actor) -> FlowVersion:
    """The flow's newest version. A flow marked published without one (seeded, or set in the
    admin's form before publishing went through versions) gets its first version now, as it
    is, so every installation, and every run, has a version."""
    return flow.versions.order_by("-number").first() or _version_freeze(flow=flow, actor=actor)


def flow_workflows_check(flow: Flow) -> None:
    """Raise Invalid, naming the workflow and its step, when a workflow cannot run with the
    flow as it is now (a step calls an app since removed from the flow, say)."""
    for workflow in flow.workflows.all():
        try:
            workflow_definition_check(
                flow=flow,
                input_schema=workflow.input_schema,
                steps=workflow.steps,
                response=workflow.response,
            )
        except Invalid as problem:
            raise Invalid(
                f"“{flow.name}” cannot be published: its workflow “{workflow.name}” "
                f"({workflow.key}) would not run: {problem.message}. Fix the workflow or the "
                "flow's apps, then publish again.",
                code="workflow_invalid",
                fields={f"workflows.{workflow.key}": problem.message},
            ) from None


@transaction.atomic
def flow_publish(*, flow: Flow, actor: Actor) -> FlowVersion:
    """Check every workflow, then freeze the flow as its next version and move or mark each
    installation."""
    Flow.objects.select_for_update().filter(pk=flow.pk).first()
    flow_workflows_check(flow)
    return _version_freeze(flow=flow, actor=actor)


@transaction.atomic
def _version_freeze(*, flow: Flow, actor: Actor) -> FlowVersion:
    Flow.objects.select_for_update().filter(pk=flow.pk).first()
    latest = flow.versions.order_by("-number").first()
    version = FlowVersion.objects.create(
        flow=flow, number=(latest.number + 1) if latest else 1, **flow_snapshot(flow)
    )
    if flow.status != Flow.Status.PUBLISHED:
        flow.status = Flow.Status.PUBLISHED
        flow.save(update_fields=["status", "updated_at"])
    installations = (
        Installation.objects.select_for_update(of=("self",))
        .filter(flow=flow)
        .select_related("end_user", "tenant")
    )
    for installation in installations:
        installation.flow = flow  # the flow locked above: no read of it per installation
        _version_offer(installation, version, actor=actor)
    audit_record(
        tenant=flow.tenant,
        actor=actor,
        action="flow.publish",
        target=f"{flow.pk} v{version.number}",
    )
    return version


def _version_offer(installation: Installation, version: FlowVersion, *, actor: Actor) -> None:
    missing = installation_missing(installation=installation, version=version)
    if not missing["apps"] and not missing["settings"]:
        _move(installation, version, actor=actor)
        return
    installation.pending_version = version
    installation.needs_action = missing
    installation.save(update_fields=["pending_version", "needs_action", "updated_at"])
    audit_record(
        tenant=installation.tenant,
        actor=actor,
        action="installation.needs_update",
        target=str(installation.pk),
    )
    event_emit(
        tenant=installation.tenant,
        type="installation.needs_update",
        data=installation_event_data(installation, pending_version=version.number, missing=missing),
    )


def _lock(installation: Installation) -> None:
    """Lock the installation's row and read again what a publish may have changed meanwhile,
    so a newer pending version offered by a concurrent publish is seen, not overwritten."""
    Installation.objects.select_for_update().filter(pk=installation.pk).values_list("pk").first()
    installation.refresh_from_db(fields=["flow_version", "pending_version", "needs_action"])


@transaction.atomic
def installation_pending_update_apply(*, installation: Installation, actor: Actor) -> bool:
    """Move the installation to its pending version once nothing is missing any more."""
    _lock(installation)
    if installation.pending_version_id is None:
        return False
    version = installation.pending_version
    missing = installation_missing(installation=installation, version=version)
    if missing["apps"] or missing["settings"]:
        if missing != installation.needs_action:
            installation.needs_action = missing
            installation.save(update_fields=["needs_action", "updated_at"])
        return False
    _move(installation, version, actor=actor)
    return True
