"""The admin for the domain: apps, OAuth clients, flows, deployments, installations, webhooks,
end users with their credentials, connect sessions and credentials.

A credential shows only a masked hint and the id of its key, never its secret.
"""

import json
from urllib.parse import urlencode

import jsonschema
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.utils.translation import ngettext

from accounts.admin_display import ResultsLookupMixin
from accounts.admin_json import JsonEditorField, JsonProblem
from accounts.admin_scoping import TenantScopedAdmin, TenantScopedInline, reveal_once_response
from accounts.models import AuditLogEntry, EndUser
from accounts.selectors import audit_actor_names, end_user_display
from accounts.services.audit import Actor
from core.csp import csp_response_update
from core.errors import Invalid
from core.validators import is_uuid
from integrations.icons import MAX_UPLOAD_BYTES, app_icon, icon_digest, icon_upload_clean
from integrations.models import (
    App,
    ConnectSession,
    ConnectSessionOpen,
    Credential,
    Deployment,
    Event,
    Flow,
    Installation,
    InstallationCredential,
    TenantOAuthClient,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowTrigger,
)
from integrations.selectors import (
    app_problems_for_flows,
    audit_entry_subjects,
    end_user_timeline,
    event_subjects,
)
from integrations.services.connect_sessions import connect_session_revoke
from integrations.services.credentials import (
    NewSecret,
    credential_fields_clean,
    credential_rename,
    credential_revoke,
)
from integrations.services.end_users import end_user_delete
from integrations.services.events import EVENT_TYPES
from integrations.services.installations import (
    flow_publish,
    flow_version_current,
    flow_workflows_check,
)
from integrations.services.jobs import verification_enqueue
from integrations.services.oauth_clients import oauth_client_secret_set
from integrations.services.verification import (
    Connection,
    ConnectKind,
    VerifyKind,
    credential_connect,
    credential_verify,
)
from integrations.services.webhook_delivery import webhook_delivery_redeliver
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from integrations.services.workflow_runs import workflow_run_rerun
from integrations.services.workflow_triggers import workflow_trigger_issue, workflow_trigger_url
from integrations.services.workflows import workflow_definition_check


class AppForm(forms.ModelForm):
    icon_upload = forms.FileField(
        required=False,
        label="Upload an icon",
        help_text="A PNG or SVG of at most 100 KB (SVGs are sanitised: no scripts, no links). "
        "Wins over the icon link above.",
    )
    icon_remove = forms.BooleanField(required=False, label="Remove the uploaded icon")

    class Meta:
        model = App
        # The admin's fieldsets choose the fields shown; these are the icon's.
        fields = ["icon"]

    def clean_icon_upload(self):
        upload = self.cleaned_data.get("icon_upload")
        if not upload:
            return None
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(f"The icon may be at most {MAX_UPLOAD_BYTES // 1024} KB.")
        return icon_upload_clean(upload.read())

    def save(self, commit=True):
        app = super().save(commit=False)
        cleaned = self.cleaned_data.get("icon_upload")
        if cleaned:
            data, content_type = cleaned
            app.icon_file, app.icon_file_type, app.icon_digest = (
                data,
                content_type,
                icon_digest(data),
            )
        elif self.cleaned_data.get("icon_remove"):
            app.icon_file, app.icon_file_type, app.icon_digest = None, "", ""
        if commit:
            app.save()
            self.save_m2m()
        return app


@admin.register(App)
class AppAdmin(TenantScopedAdmin):
    form = AppForm
    list_display = ["name", "slug", "auth_type", "tenant", "is_enabled"]
    list_filter = ["auth_type", "is_enabled", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]
    readonly_fields = ["icon_preview"]

    @admin.display(description="Icon shown")
    def icon_preview(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        icon = app_icon(obj)
        if icon.is_monogram:
            return f"A monogram: {icon.letters}"
        return format_html('<img src="{}" alt="" width="40" height="40">', icon.url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        # The preview shows the icon link as the modal does, and an icon may be any https URL
        # (the modal's policy allows the same, connect/session.py).
        return csp_response_update(response, {"img-src": ["https:"]})

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "tenant",
                    "slug",
                    "name",
                    "description",
                    "icon",
                    "icon_upload",
                    "icon_remove",
                    "icon_preview",
                    "docs_url",
                    "auth_type",
                    "is_enabled",
                ]
            },
        ),
        (
            "OAuth2",
            {
                "fields": [
                    "authorization_url",
                    "token_url",
                    "revocation_url",
                    "scopes",
                    "scope_separator",
                    "pkce",
                    "token_auth_method",
                    "revocation_method",
                    "authorization_params",
                    "token_response_fields",
                    "add_account_prompt",
                    "popup_width",
                    "popup_height",
                ],
                "classes": ["collapse"],
            },
        ),
        ("API-key and basic form", {"fields": ["fields"], "classes": ["collapse"]}),
        (
            "Requests",
            {
                "fields": [
                    "api_base_url",
                    "auth_scheme",
                    "request_headers",
                    "verification",
                    "refresh_buffer_seconds",
                    "reverify_interval_seconds",
                ]
            },
        ),
    ]


class OAuthClientForm(forms.ModelForm):
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown. Leave empty to keep the current secret.",
    )

    class Meta:
        model = TenantOAuthClient
        fields = ["tenant", "app", "client_id", "scopes"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.has_secret and not cleaned.get("client_secret"):
            self.add_error("client_secret", "A new OAuth client needs its client secret.")
        app = cleaned.get("app")
        if app and not app.is_oauth2:
            self.add_error("app", f"{app} does not use OAuth2.")
        return cleaned


@admin.register(TenantOAuthClient)
class TenantOAuthClientAdmin(TenantScopedAdmin):
    form = OAuthClientForm
    list_display = ["app", "tenant", "client_id", "updated_at"]
    list_filter = ["tenant"]
    readonly_fields = ["secret_status"]

    @admin.display(description="Client secret")
    def secret_status(self, obj):
        return f"Set, encrypted with key {obj.secret_key_id}." if obj.has_secret else "Not set."

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("client_secret"):
            oauth_client_secret_set(client=obj, client_secret=form.cleaned_data["client_secret"])


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInlineMixin(ReadOnlyMixin):
    """Rows of an object the staff member may already see (the parent admin is scoped)."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class WorkflowInline(TenantScopedInline):
    model = Workflow
    fields = ["key", "name", "description", "enabled_by_default", "is_enabled", "trigger"]
    show_change_link = True


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class WorkflowForm(forms.ModelForm):
    """Checks the definition as every save does: a refusal names the step and the field."""

    class Meta:
        model = Workflow
        fields = [
            "flow",
            "key",
            "name",
            "description",
            "trigger",
            "is_enabled",
            "enabled_by_default",
            "input_schema",
            "steps",
            "response",
        ]

    def clean(self):
        data = super().clean()
        flow = data.get("flow")
        if flow is None or self.errors:
            return data
        try:
            workflow_definition_check(
                flow=flow,
                input_schema=data.get("input_schema") or {},
                steps=data.get("steps") or [],
                response=data.get("response") or {},
            )
        except Invalid as exc:
            where = next(iter(exc.fields), "")
            field = next(
                (name for name in ("steps", "response", "input_schema") if name in where),
                None,
            )
            raise ValidationError({field: exc.message} if field else exc.message) from None
        return data


class RecentRunInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = WorkflowRun
    fk_name = "workflow"
    fields = ["created_at", "status", "trigger", "end_user", "failed_step", "error_code"]
    readonly_fields = fields
    show_change_link = True
    extra = 0
    max_num = 0
    verbose_name_plural = "recent runs"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("end_user").order_by("-created_at")


@admin.register(Workflow)
class WorkflowAdmin(TenantScopedAdmin):
    form = WorkflowForm
    tenant_path = "flow__tenant"
    list_display = ["name", "flow", "trigger", "is_enabled", "public_id"]
    list_filter = ["trigger", "is_enabled"]
    list_select_related = ["flow"]
    search_fields = ["name", "key", "flow__name"]
    readonly_fields = ["public_id"]
    inlines = [RecentRunInline]


@admin.register(WorkflowTrigger)
class WorkflowTriggerAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """Which installations have a trigger URL; the URL itself is stored only hashed."""

    list_display = ["workflow", "installation", "created_at", "rotated_at", "last_used_at"]
    list_select_related = ["workflow", "installation", "installation__flow"]
    readonly_fields = [
        "workflow",
        "installation",
        "created_at",
        "rotated_at",
        "last_used_at",
    ]
    fields = readonly_fields


class WorkflowRunStepInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = WorkflowRunStep
    fields = [
        "position",
        "name",
        "app_slug",
        "credential_id",
        "method",
        "path",
        "status_code",
        "duration_ms",
        "error_code",
        "error_message",
        "response_excerpt",
    ]
    readonly_fields = fields
    extra = 0


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """A run, read-only: every step's request and outcome, beside the definition that ran."""

    list_display = ["__str__", "workflow", "end_user", "status", "trigger", "created_at"]
    list_filter = ["status", "trigger"]
    list_select_related = ["workflow", "end_user"]
    search_fields = ["id", "end_user__external_id", "workflow__name"]
    readonly_fields = [
        "id",
        "workflow",
        "flow_version",
        "installation",
        "end_user",
        "credentials",
        "trigger",
        "status",
        "error_code",
        "error_message",
        "failed_step",
        "rerun_of",
        "created_at",
        "started_at",
        "finished_at",
        "input_json",
        "output_json",
        "definition_json",
    ]
    fields = readonly_fields
    inlines = [WorkflowRunStepInline]
    actions = ["rerun"]

    @admin.display(description="Credentials used")
    def credentials(self, obj):
        return ", ".join(f"{c.app_slug}: {c.credential_id}" for c in obj.credentials_used.all())

    @admin.display(description="Input")
    def input_json(self, obj):
        return _pretty_json(obj.input)

    @admin.display(description="Response (secrets redacted)")
    def output_json(self, obj):
        return _pretty_json(obj.output)

    @admin.display(description="Definition that ran (read-only)")
    def definition_json(self, obj):
        return _pretty_json(obj.definition)

    def has_rerun_permission(self, request, obj=None):
        return TenantScopedAdmin.has_change_permission(self, request, obj)

    @admin.action(
        description="Re-run selected failed runs with the same input", permissions=["rerun"]
    )
    def rerun(self, request, queryset):
        started, refused = 0, []
        runs = queryset.select_related("workflow", "installation", "installation__end_user")
        for run in runs:
            if not self.has_rerun_permission(request, run):
                refused.append(f"{run.pk}: you may not re-run this tenant's runs")
                continue
            if run.status != WorkflowRun.Status.FAILED:
                refused.append(f"{run.pk}: only a failed run is re-run (this one {run.status})")
                continue
            try:
                workflow_run_rerun(run=run)
            except Invalid as exc:
                refused.append(f"{run.pk}: {exc.message}")
                continue
            started += 1
        if started:
            self.message_user(
                request,
                ngettext(
                    "Queued %d run again with the same input.",
                    "Queued %d runs again with the same input.",
                    started,
                )
                % started,
            )
        for problem in refused:
            self.message_user(request, problem, level=messages.WARNING)


class ConnectCheckMixin:
    """A flow's or deployment's page says which of its apps end users will not see, and why
    (app_problems_for_flows: the modal's own connectability rule)."""

    def _flows_of(self, obj):
        # A flow checks itself; a deployment, the published flows the modal offers from it.
        if isinstance(obj, Deployment):
            return obj.flows.filter(status=Flow.Status.PUBLISHED)
        return Flow.objects.filter(pk=obj.pk)

    def _problems(self, obj):
        if obj is None or obj.pk is None:
            return []
        return app_problems_for_flows(tenant=obj.tenant, flows=self._flows_of(obj))

    @admin.display(description="Connect check")
    def connect_check(self, obj):
        problems = self._problems(obj)
        if not problems:
            return "Every app here can be connected by end users."
        return format_html_join(
            "", '<p class="connect-check-problem">{}</p>', ((p.reason,) for p in problems)
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            obj = self.get_object(request, object_id)
            for problem in self._problems(obj):
                self.message_user(request, problem.reason, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)


def settings_schema_check(value) -> None:
    """A flow's settings schema: a JSON Schema object (the end user's settings form)."""
    if not isinstance(value, dict):
        raise JsonProblem(
            'A settings schema is a JSON object, e.g. {"type": "object", "properties": {}}'
        )
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    error = jsonschema.exceptions.best_match(meta.iter_errors(value))
    if error is not None:
        where = f" at {error.json_path}" if error.path else ""
        raise JsonProblem(f"Not a valid JSON Schema{where}: {error.message}", list(error.path))


class FlowForm(forms.ModelForm):
    class Meta:
        model = Flow
        fields = ["tenant", "name", "description", "status", "apps", "settings_schema"]
        field_classes = {"settings_schema": JsonEditorField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "settings_schema" in self.fields:
            self.fields["settings_schema"].check = settings_schema_check


@admin.register(Flow)
class FlowAdmin(ConnectCheckMixin, TenantScopedAdmin):
    form = FlowForm
    list_display = ["name", "tenant", "status", "updated_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["name"]
    filter_horizontal = ["apps"]
    readonly_fields = ["connect_check"]
    inlines = [WorkflowInline]
    actions = ["publish"]

    def has_publish_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    @admin.action(description="Publish a new version", permissions=["publish"])
    def publish(self, request, queryset):
        for flow in queryset:
            if not self.has_change_permission(request, flow):
                continue
            try:
                version = flow_publish(flow=flow, actor=Actor.staff(request.user))
            except Invalid as problem:
                self.message_user(request, problem.message, messages.ERROR)
                continue
            waiting = Installation.objects.filter(pending_version=version).count()
            self.message_user(
                request,
                f"Published “{flow.name}” version {version.number}; "
                f"{waiting} installation(s) need their user's action, the others moved.",
            )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        flow = form.instance
        if flow.status == Flow.Status.PUBLISHED and not flow.versions.exists():
            # Published in the form: freeze the first version (apps and workflows saved by
            # now), as the publish action would, unless a workflow could not run.
            try:
                flow_workflows_check(flow)
            except Invalid as problem:
                flow.status = Flow.Status.DRAFT
                flow.save(update_fields=["status", "updated_at"])
                self.message_user(request, f"Saved as a draft. {problem.message}", messages.ERROR)
                return
            flow_version_current(flow=flow, actor=Actor.staff(request.user))


@admin.register(Deployment)
class DeploymentAdmin(ConnectCheckMixin, TenantScopedAdmin):
    list_display = ["name", "tenant", "is_active", "updated_at"]
    list_filter = ["is_active", "tenant"]
    filter_horizontal = ["flows"]
    readonly_fields = ["connect_check"]


class InstallationCredentialInline(TenantScopedInline):
    model = InstallationCredential
    fields = ["app", "credential"]


class InstallationRunInline(RecentRunInline):
    fk_name = "installation"
    fields = ["created_at", "workflow", "status", "trigger", "failed_step", "error_code"]
    readonly_fields = fields


@admin.register(Installation)
class InstallationAdmin(TenantScopedAdmin):
    list_display = ["flow", "end_user", "enabled", "tenant", "updated_at"]
    list_filter = ["enabled", "tenant"]
    search_fields = ["end_user__external_id", "flow__name"]
    list_select_related = ["flow", "end_user", "tenant"]
    readonly_fields = ["disabled_reason", "flow_version", "pending_version", "needs_action"]
    inlines = [InstallationCredentialInline, InstallationRunInline]
    actions = ["issue_trigger_urls"]

    def has_issue_trigger_urls_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    @admin.action(
        description="Issue or rotate trigger URLs (shows them once)",
        permissions=["issue_trigger_urls"],
    )
    def issue_trigger_urls(self, request, queryset):
        installations = [i for i in queryset if self.has_change_permission(request, i)]
        if len(installations) != 1:
            self.message_user(request, "Choose one installation at a time.", messages.ERROR)
            return None
        installation = installations[0]
        workflows = list(installation.flow.workflows.filter(trigger=Workflow.Trigger.URL))
        if not workflows:
            self.message_user(request, "This flow has no URL-triggered workflow.", messages.ERROR)
            return None
        urls = []
        for workflow in workflows:
            _, token = workflow_trigger_issue(workflow=workflow, installation=installation)
            urls.append(workflow_trigger_url(token))
        return reveal_once_response(
            request,
            title=f"Trigger URLs of {installation}",
            secret="  ".join(urls),
            explanation="A GET or POST to a trigger URL queues a run of "
            + ", ".join(f"“{w.name}”" for w in workflows)
            + " for this installation. Earlier URLs of these workflows stop working now.",
            back_url=reverse("admin:integrations_installation_changelist"),
        )


class WebhookEndpointForm(forms.ModelForm):
    """Event types are chosen from the registry (EVENT_TYPES); none chosen sends every type."""

    event_types = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {meaning}") for name, meaning in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple(attrs={"class": "event-type-choices"}),
        required=False,
        help_text="Leave all unticked to receive every event type, including future ones.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "is_active", "event_types"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A type no longer in the registry stays listed, so saving does not silently drop it.
        unknown = [t for t in self.initial.get("event_types") or [] if t not in EVENT_TYPES]
        if unknown:
            field = self.fields["event_types"]
            field.choices = [*field.choices, *((t, f"{t}: not a known type") for t in unknown)]

    def clean_event_types(self):
        chosen = self.cleaned_data["event_types"]
        return [name for name in EVENT_TYPES if name in chosen] + [
            name for name in chosen if name not in EVENT_TYPES
        ]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "tenant", "is_active", "event_types_summary", "created_at"]
    list_filter = ["is_active", "tenant"]
    fields = ["tenant", "url", "description", "is_active", "event_types", "secret_status"]

    @admin.display(description="Event types")
    def event_types_summary(self, obj):
        if not obj.event_types:
            return "Every type"
        return ", ".join(obj.event_types)

    readonly_fields = ["secret_status"]
    actions = ["rotate_secret"]

    @admin.display(description="Signing secret")
    def secret_status(self, obj):
        if obj.pk is None or not obj.has_secret:
            return "Generated when the endpoint is saved, and shown once."
        return "Set (encrypted). Use the “Rotate signing secret” action for a new one."

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            obj._new_secret = webhook_endpoint_secret_rotate(endpoint=obj)

    def response_add(self, request, obj, post_url_continue=None):
        return reveal_once_response(
            request,
            title=f"Webhook endpoint {obj.url} created",
            secret=obj._new_secret,
            explanation="Verify each delivery's webhook-signature header with this secret "
            "(Standard Webhooks).",
            back_url=reverse("admin:integrations_webhookendpoint_changelist"),
        )

    @admin.action(description="Rotate signing secret (shows the new one once)")
    def rotate_secret(self, request, queryset):
        endpoints = [e for e in queryset if self.has_change_permission(request, e)]
        if len(endpoints) != 1:
            self.message_user(request, "Rotate one endpoint's secret at a time.", messages.ERROR)
            return None
        return reveal_once_response(
            request,
            title=f"New signing secret for {endpoints[0].url}",
            secret=webhook_endpoint_secret_rotate(endpoint=endpoints[0]),
            explanation="Deliveries from now on are signed with this secret.",
            back_url=reverse("admin:integrations_webhookendpoint_changelist"),
        )


class WebhookDeliveryInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = WebhookDelivery
    fields = [
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    readonly_fields = fields
    show_change_link = True
    extra = 0


@admin.register(Event)
class EventAdmin(ResultsLookupMixin, ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["type", "end_user_name", "app_name", "credential_link", "created_at", "tenant"]
    list_filter = ["type", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["type", "data__user_id", "data__credential_id"]
    readonly_fields = [
        "id",
        "tenant",
        "type",
        "end_user_name",
        "app_name",
        "credential_link",
        "data",
        "created_at",
    ]
    inlines = [WebhookDeliveryInline]

    def lookup_results(self, request, results):
        subjects = event_subjects(events=results)
        for event in results:
            event.subject = subjects[event.pk]

    def _subject(self, obj):
        if not hasattr(obj, "subject"):
            self.lookup_results(None, [obj])
        return obj.subject

    @admin.display(description="End user")
    def end_user_name(self, obj):
        subject = self._subject(obj)
        if subject.end_user is None:
            return subject.user_external_id or "-"
        url = reverse("admin:accounts_enduser_change", args=[subject.end_user.pk])
        return format_html('<a href="{}">{}</a>', url, end_user_display(subject.end_user))

    @admin.display(description="App")
    def app_name(self, obj):
        return self._subject(obj).app_name or "-"

    @admin.display(description="Credential")
    def credential_link(self, obj):
        return credential_html(
            credential_id=self._subject(obj).credential_id,
            name=self._subject(obj).credential_name,
            exists=self._subject(obj).credential_exists,
        )


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ResultsLookupMixin, ReadOnlyMixin, TenantScopedAdmin):
    """Who did what to which credential or installation, readably (audit_entry_subjects)."""

    list_display = [
        "created_at",
        "action",
        "outcome",
        "actor_name",
        "end_user_name",
        "app_name",
        "credential_link",
        "tenant",
    ]
    list_filter = ["action", "outcome", "actor_type", "tenant"]
    search_fields = [
        "target",
        "actor",
        "credential__label",
        "credential__identity",
        "credential__end_user__external_id",
        "credential__end_user__name",
        "credential__end_user__email",
    ]
    list_select_related = ["credential__end_user", "credential__app", "tenant"]
    fields = [
        "created_at",
        "action",
        "outcome",
        "actor_type",
        "actor_name",
        "tenant",
        "end_user_name",
        "app_name",
        "credential_link",
        "target",
        "detail",
    ]
    readonly_fields = fields

    def lookup_results(self, request, results):
        names = audit_actor_names(entries=results, tenant_ids={e.tenant_id for e in results})
        subjects = audit_entry_subjects(entries=results)
        for entry in results:
            entry.actor_name = names[(entry.actor_type, entry.actor)]
            entry.subject = subjects[entry.pk]

    def _looked_up(self, obj):
        if not hasattr(obj, "subject"):
            self.lookup_results(None, [obj])
        return obj

    @admin.display(description="Actor")
    def actor_name(self, obj):
        return self._looked_up(obj).actor_name

    @admin.display(description="End user", ordering="credential__end_user__external_id")
    def end_user_name(self, obj):
        end_user = self._looked_up(obj).subject.end_user
        if end_user is None:
            return "-"
        url = reverse("admin:accounts_enduser_change", args=[end_user.pk])
        return format_html('<a href="{}">{}</a>', url, end_user_display(end_user))

    @admin.display(description="App", ordering="credential__app__name")
    def app_name(self, obj):
        return self._looked_up(obj).subject.app_name or "-"

    @admin.display(description="Credential or flow")
    def credential_link(self, obj):
        subject = self._looked_up(obj).subject
        if subject.credential is not None:
            url = reverse("admin:integrations_credential_change", args=[subject.credential.pk])
            return format_html('<a href="{}">{}</a>', url, subject.credential.display_name)
        if subject.installation is not None:
            url = reverse("admin:integrations_installation_change", args=[subject.installation.pk])
            return format_html('<a href="{}">{}</a>', url, subject.installation.flow.name)
        if subject.flow is not None:
            url = reverse("admin:integrations_flow_change", args=[subject.flow.pk])
            version = obj.target.partition(" ")[2]
            return format_html('<a href="{}">{}</a> {}', url, subject.flow.name, version)
        if is_uuid(obj.target):
            return f"A deleted {obj.action.partition('.')[0].replace('_', ' ')}"
        return obj.target or "-"


def credential_html(*, credential_id: str, name: str, exists: bool) -> str:
    """A credential by its name, linked to its page while it exists."""
    if not credential_id:
        return "-"
    if not exists:
        return f"{name or 'A credential'} (deleted)"
    url = reverse("admin:integrations_credential_change", args=[credential_id])
    return format_html('<a href="{}">{}</a>', url, name)


class WebhookAttemptInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """Deliveries with every attempt and the receiver's answers; "Redeliver" sends one again."""

    list_display = [
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", "event__type"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["event__id", "endpoint__url"]
    readonly_fields = [
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.display(description="Payload (the signed body)")
    def payload(self, obj):
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.event.payload(), indent=2, ensure_ascii=False)
        )

    def has_redeliver_permission(self, request, obj=None):
        return TenantScopedAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Redeliver selected deliveries", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        deliveries = [
            delivery
            for delivery in queryset.select_related("event")
            if self.has_redeliver_permission(request, delivery)
        ]
        for delivery in deliveries:
            webhook_delivery_redeliver(delivery=delivery)
        self.message_user(
            request,
            ngettext(
                "Queued %d delivery again; its attempts appear on its page.",
                "Queued %d deliveries again; their attempts appear on their pages.",
                len(deliveries),
            )
            % len(deliveries),
        )


INLINE_VERIFY_LIMIT = 10


class SecretForm(forms.Form):
    """An API-key or basic app's fields, checked by the same rule as the modal and the API."""

    def __init__(self, *args, app: App, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        for spec in app.fields:
            widget = (
                forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
                if spec.get("secret")
                else forms.TextInput(attrs={"autocomplete": "off"})
            )
            self.fields[spec["name"]] = forms.CharField(
                label=spec["label"], help_text=spec.get("help", ""), required=False, widget=widget
            )

    def clean(self):
        cleaned = super().clean()
        try:
            self.secret = credential_fields_clean(
                app=self.app, fields={name: cleaned.get(name, "") for name in self.fields}
            )
        except ValidationError as exc:
            for name, problems in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, problems)
        return cleaned


def _refusal(connection: Connection, credential: Credential) -> str:
    app = credential.app.name
    if connection.kind == ConnectKind.IDENTITY_MISMATCH:
        return (
            f"That key belongs to the {app} account {connection.identity}, not to "
            f"{credential.identity}. Nothing was changed."
        )
    if connection.kind == ConnectKind.UNAVAILABLE:
        return f"{app} did not answer ({connection.reason}). Nothing was changed; try again."
    return f"{app} refused the key: {connection.reason} Nothing was changed."


class CredentialInline(admin.TabularInline):
    model = Credential
    fields = ["app", "label", "identity", "status", "expires_at", "last_verified_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("app")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EndUser)
class EndUserAdmin(TenantScopedAdmin):
    list_display = ["external_id", "name", "email", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["external_id", "email", "name"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [CredentialInline]

    TIMELINE_PAGE = 50

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            context.update(self._timeline_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _timeline_context(self, request, end_user):
        """The support view: what happened to this end user's accounts (end_user_timeline)."""
        params = request.GET
        try:
            limit = max(self.TIMELINE_PAGE, int(params.get("timeline", self.TIMELINE_PAGE)))
        except ValueError:
            limit = self.TIMELINE_PAGE
        credential_id = params.get("credential", "")
        credential_id = credential_id if is_uuid(credential_id) else ""
        secret_uses = params.get("secret_uses") == "1"
        timeline = end_user_timeline(
            end_user=end_user, limit=limit, credential_id=credential_id, secret_uses=secret_uses
        )
        chosen = next((c for c in timeline.credentials if str(c.pk) == credential_id), None)

        def query(**changes):
            values = {"credential": credential_id, "secret_uses": "1" if secret_uses else ""}
            values.update(changes)
            return urlencode({key: value for key, value in values.items() if value})

        return {
            "timeline": timeline,
            "timeline_credential": chosen,
            "timeline_secret_uses": secret_uses,
            "timeline_all_query": query(credential=""),
            "timeline_toggle_uses_query": query(secret_uses="" if secret_uses else "1"),
            "timeline_more_query": query(timeline=str(limit + self.TIMELINE_PAGE)),
        }

    # Deleting a user disconnects each account first, with its events, as the API does; so
    # the credentials are not the cascade's to delete, and need no delete permission of their own.
    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Credential._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        end_user_delete(end_user=obj, actor=Actor.staff(request.user))

    def delete_queryset(self, request, queryset):
        for end_user in queryset:
            end_user_delete(end_user=end_user, actor=Actor.staff(request.user))


class ConnectSessionOpenInline(ReadOnlyInlineMixin, admin.TabularInline):
    """Hand-off links: who opened the link (a coarse client) and when; never the token."""

    model = ConnectSessionOpen
    extra = 0
    fields = ["opened_at", "client"]
    readonly_fields = fields
    verbose_name_plural = "opens (hand-off links)"


@admin.register(ConnectSession)
class ConnectSessionAdmin(TenantScopedAdmin):
    list_display = [
        "end_user",
        "tenant",
        "source",
        "recipient_name",
        "created_at",
        "state",
        "used_from_origin",
    ]
    list_filter = ["tenant", "source", "single_use"]
    search_fields = [
        "end_user__external_id",
        "end_user__email",
        "recipient_name",
        "recipient_email",
    ]
    list_select_related = ["end_user", "tenant"]
    readonly_fields = [
        "id",
        "tenant",
        "end_user",
        "source",
        "created_at",
        "expires_at",
        "revoked_at",
        "deployment",
        "apps",
        "allow_multiple",
        "redirect_uri",
        "theme",
        "consumer_metadata",
        "custom_settings",
        "used_from_origin",
        "last_used_at",
        "recipient_name",
        "recipient_email",
        "single_use",
        "spent_at",
    ]
    fields = readonly_fields
    inlines = [ConnectSessionOpenInline]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="State", ordering="expires_at")
    def state(self, obj):
        # One column for what expires_at, revoked_at and spent_at say together (the list fits
        # a 1280 px window; each date is on the session's page).
        if obj.revoked_at:
            return f"Revoked {date_format(localtime(obj.revoked_at), 'SHORT_DATETIME_FORMAT')}"
        if obj.spent_at:
            return f"Used {date_format(localtime(obj.spent_at), 'SHORT_DATETIME_FORMAT')}"
        if obj.is_expired():
            return "Expired"
        return f"Open until {date_format(localtime(obj.expires_at), 'SHORT_DATETIME_FORMAT')}"

    @admin.action(description="Revoke selected sessions")
    def revoke(self, request, queryset):
        sessions = [s for s in queryset if self.has_change_permission(request, s)]
        for session in sessions:
            connect_session_revoke(session=session)
        self.message_user(
            request,
            ngettext("Revoked %d session.", "Revoked %d sessions.", len(sessions)) % len(sessions),
        )


@admin.register(Credential)
class CredentialAdmin(TenantScopedAdmin):
    list_display = [
        "display_name",
        "app",
        "end_user",
        "status",
        "expires_at",
        "last_verified_at",
        "tenant",
    ]
    list_filter = ["status", "tenant", "app"]
    search_fields = ["identity", "label", "end_user__external_id", "end_user__email"]
    list_select_related = ["app", "end_user", "tenant"]
    fields = [
        "id",
        "tenant",
        "end_user",
        "app",
        "label",
        "identity",
        "status",
        "secret",
        "scopes",
        "expires_at",
        "refresh_at",
        "last_refreshed_at",
        "last_verified_at",
        "last_verification_error",
        "next_verification_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [field for field in fields if field != "label"]
    actions = ["verify_now", "revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Secret")
    def secret(self, obj):
        if not obj.has_secret:
            return "None (revoked or not stored)"
        hint = f" ending {obj.secret_hint}" if obj.secret_hint else ""
        text = f"Encrypted with key {obj.secret_key_id}{hint}; never shown."
        if obj.app.is_oauth2:
            return text
        url = reverse("admin:integrations_credential_replace_secret", args=[obj.pk])
        return format_html('{} <a href="{}">Replace the key…</a>', text, url)

    def save_model(self, request, obj, form, change):
        # The label is the only editable field; a rename goes through the credential's own
        # transition, so it is audited and reaches the outbox like any other change.
        if change and "label" in form.changed_data:
            credential_rename(credential=obj, label=obj.label, actor=Actor.staff(request.user))

    def get_urls(self):
        replace = self.admin_site.admin_view(self.replace_secret_view)
        return [
            path(
                "<path:object_id>/replace-secret/",
                replace,
                name="integrations_credential_replace_secret",
            ),
            *super().get_urls(),
        ]

    def replace_secret_view(self, request, object_id):
        """Reconnect in place, as the modal and the API do: the new key is kept only when the
        provider accepts it and says it is the same account."""
        credential = self.get_object(request, object_id)
        if credential is None:
            raise Http404("No such credential.")
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        change_url = reverse("admin:integrations_credential_change", args=[credential.pk])
        if credential.app.is_oauth2:
            self.message_user(
                request,
                "An OAuth2 account is reconnected by its owner, through the connect modal.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        form = SecretForm(request.POST or None, app=credential.app)
        if request.method == "POST" and form.is_valid():
            connection = credential_connect(
                end_user=credential.end_user,
                app=credential.app,
                new=NewSecret(secret=form.secret),
                actor=Actor.staff(request.user),
                reconnect=credential,
            )
            if connection.ok:
                self.message_user(
                    request, f"{credential.app.name} accepted the new key; {credential} is active."
                )
                return HttpResponseRedirect(change_url)
            form.add_error(None, _refusal(connection, credential))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replace the key of {credential}",
            "credential": credential,
            "form": form,
            "opts": self.opts,
            "change_url": change_url,
        }
        return TemplateResponse(
            request, "admin/integrations/credential/replace_secret.html", context
        )

    @admin.action(description="Verify now")
    def verify_now(self, request, queryset):
        credentials = [c for c in queryset if self.has_change_permission(request, c)]
        actor = Actor.staff(request.user)
        if len(credentials) > INLINE_VERIFY_LIMIT:
            for credential in credentials:
                verification_enqueue(credential_id=credential.pk)
            self.message_user(
                request,
                f"Queued {len(credentials)} verifications; statuses change here as results arrive.",
            )
            return
        results: dict[str, int] = {}
        for credential in credentials:
            outcome = credential_verify(credential_id=credential.pk, actor=actor)
            results[outcome.kind] = results.get(outcome.kind, 0) + 1
            if outcome.kind in (VerifyKind.REJECTED, VerifyKind.UNAVAILABLE):
                self.message_user(request, f"{credential}: {outcome.reason}", messages.WARNING)
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(results.items()))
        self.message_user(
            request, f"Verified {len(credentials)} credential(s): {summary or 'none'}."
        )

    @admin.action(description="Revoke selected credentials")
    def revoke(self, request, queryset):
        credentials = [c for c in queryset if self.has_change_permission(request, c)]
        for credential in credentials:
            credential_revoke(
                credential=credential, actor=Actor.staff(request.user), reason="Revoked by staff."
            )
        self.message_user(
            request,
            ngettext("Revoked %d credential.", "Revoked %d credentials.", len(credentials))
            % len(credentials),
        )
