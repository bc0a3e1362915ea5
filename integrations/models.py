"""The domain: the app catalog, credentials, connect sessions, flows and deployments,
installations, OAuth attempts, and the webhook outbox."""

from __future__ import annotations

import re
import string
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import EndUser, Tenant
from core.validators import validate_http_url, validate_theme
from core.vault import SealedSecretModel
from integrations.app_schema import (
    AUTH_SCHEME_SCHEMA,
    FIELDS_SCHEMA,
    REQUEST_HEADERS_SCHEMA,
    TOKEN_RESPONSE_FIELDS_SCHEMA,
    VERIFICATION_SCHEMA,
    check_json,
)
from integrations.icons import validate_icon

# A credential's name: one rule for the modal, the API and the admin (credentials.label_clean).
MAX_LABEL_LENGTH = 120


class App(models.Model):
    """A third-party service end users connect to: how to authorise, apply and verify it.

    Catalog apps (no tenant) ship in ``integrations/catalog/apps.toml``; a tenant may add its own.
    """

    class AuthType(models.TextChoices):
        OAUTH2 = "oauth2", "OAuth2"
        API_KEY = "api_key", "API key"
        BASIC = "basic", "Username and password"

    class TokenAuthMethod(models.TextChoices):
        POST = "client_secret_post", "Client secret in the body"
        BASIC = "client_secret_basic", "HTTP Basic"

    class RevocationMethod(models.TextChoices):
        RFC7009 = "rfc7009", "RFC 7009 (form: token, token_type_hint, client authentication)"
        BEARER = "bearer", "The token as a Bearer header (Slack's auth.revoke)"
        JSON = "json", "JSON body {token} with client authentication (Notion)"

    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="custom_apps",
        help_text="Empty for a catalog app shared by every tenant.",
    )
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    icon = models.CharField(
        max_length=500,
        blank=True,
        help_text="An https URL, simple-icons:<slug> (a vendored brand logo) or a static file "
        "under integrations/icons/. An uploaded icon wins; with neither, a monogram is shown.",
    )
    # An uploaded PNG or sanitised SVG (integrations/icons.py), served by the modal at a URL
    # carrying its digest.
    icon_file = models.BinaryField(null=True, blank=True, editable=False)
    icon_file_type = models.CharField(max_length=32, blank=True, editable=False)
    icon_digest = models.CharField(max_length=16, blank=True, editable=False)
    docs_url = models.URLField(blank=True)
    auth_type = models.CharField(max_length=16, choices=AuthType.choices)
    # OAuth2
    authorization_url = models.URLField(max_length=500, blank=True)
    token_url = models.URLField(max_length=500, blank=True)
    revocation_url = models.URLField(max_length=500, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    scope_separator = models.CharField(max_length=4, default=" ", blank=True)
    pkce = models.BooleanField("PKCE (S256)", default=True)
    token_auth_method = models.CharField(
        max_length=32, choices=TokenAuthMethod.choices, default=TokenAuthMethod.POST
    )
    revocation_method = models.CharField(
        max_length=16, choices=RevocationMethod.choices, default=RevocationMethod.RFC7009
    )
    authorization_params = models.JSONField(
        default=dict, blank=True, help_text="Extra query parameters for the authorization URL."
    )
    # API key and basic: the form the end user fills in.
    fields = models.JSONField(default=list, blank=True)
    # Every auth type: how the secret is applied to a request, where the API is, how to verify.
    auth_scheme = models.JSONField(default=dict)
    api_base_url = models.CharField(
        max_length=500,
        help_text="May use form fields, e.g. https://{subdomain}.zendesk.com/api/v2.",
    )
    verification = models.JSONField(default=dict)
    token_response_fields = models.JSONField(
        default=list,
        blank=True,
        help_text="OAuth2 token-response values the templates may use, each with the pattern it "
        "must match, e.g. Salesforce's instance_url.",
    )
    request_headers = models.JSONField(
        default=dict,
        blank=True,
        help_text="Headers sent with every request to the API, e.g. a version header.",
    )
    add_account_prompt = models.CharField(
        max_length=40,
        blank=True,
        help_text=(
            "OAuth2: the `prompt` sent when a person adds another account, so the provider lets "
            "them choose or sign in again (e.g. select_account, login). Empty where the "
            "provider has none."
        ),
    )
    popup_width = models.PositiveSmallIntegerField(
        default=520,
        validators=[MinValueValidator(320), MaxValueValidator(1200)],
        help_text="OAuth2: the sign-in window's width in pixels, to fit the consent page.",
    )
    popup_height = models.PositiveSmallIntegerField(
        default=720,
        validators=[MinValueValidator(400), MaxValueValidator(1000)],
        help_text="OAuth2: the sign-in window's height in pixels.",
    )
    refresh_buffer_seconds = models.PositiveIntegerField(
        default=900, help_text="Refresh OAuth2 tokens this long before they expire."
    )
    reverify_interval_seconds = models.PositiveIntegerField(
        default=86400, help_text="Re-verify long-lived credentials this often."
    )
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=Q(tenant__isnull=True), name="app_catalog_slug_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "slug"],
                condition=Q(tenant__isnull=False),
                name="app_tenant_slug_unique",
            ),
            models.CheckConstraint(
                condition=Q(auth_type__in=["oauth2", "api_key", "basic"]),
                name="app_auth_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(revocation_method__in=["rfc7009", "bearer", "json"]),
                name="app_revocation_method_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def shown_description(self) -> str:
        """The description in the active language: the catalog's words are translated
        (``integrations/locale``); a tenant's own app keeps its own."""
        if self.tenant_id is None and self.description:
            return gettext(self.description)
        return self.description

    @property
    def is_oauth2(self) -> bool:
        return self.auth_type == self.AuthType.OAUTH2

    @property
    def supports_revocation(self) -> bool:
        return bool(self.revocation_url)

    @property
    def secret_field_names(self) -> list[str]:
        return [field["name"] for field in self.fields if field.get("secret")]

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            validate_icon(self.icon or "")
        except ValidationError as exc:
            errors["icon"] = exc.messages
        for field, schema in (
            ("fields", FIELDS_SCHEMA),
            ("request_headers", REQUEST_HEADERS_SCHEMA),
            ("token_response_fields", TOKEN_RESPONSE_FIELDS_SCHEMA),
            ("auth_scheme", AUTH_SCHEME_SCHEMA),
            ("verification", VERIFICATION_SCHEMA),
        ):
            try:
                check_json(getattr(self, field), schema, field=field)
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if self.is_oauth2:
            for field in ("authorization_url", "token_url"):
                if not getattr(self, field):
                    errors.setdefault(field, []).append("An OAuth2 app needs this URL.")
        elif not self.fields:
            errors.setdefault("fields", []).append("An API-key or basic app needs form fields.")
        else:
            for field in self.fields:
                if pattern := field.get("pattern"):
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        errors.setdefault("fields", []).append(
                            f"{field['name']}: the pattern is not a valid regular "
                            f"expression ({exc})."
                        )
        known = self.template_variables()
        for where, template in self.templates().items():
            unknown = _placeholders(template) - known
            if unknown:
                errors.setdefault(where, []).append(
                    f"Unknown placeholder(s) {', '.join(sorted(unknown))}; "
                    f"available: {', '.join(sorted(known))}."
                )
        if errors:
            raise ValidationError(errors)

    def template_variables(self) -> set[str]:
        if self.is_oauth2:
            declared = (
                self.token_response_fields if isinstance(self.token_response_fields, list) else []
            )
            return {"access_token"} | {
                field["name"] for field in declared if isinstance(field, dict) and "name" in field
            }
        return {
            field["name"] for field in self.fields if isinstance(field, dict) and "name" in field
        }

    def templates(self) -> dict[str, str]:
        scheme = self.auth_scheme if isinstance(self.auth_scheme, dict) else {}
        found = {"api_base_url": self.api_base_url}
        for key in ("template", "username", "password"):
            if isinstance(scheme.get(key), str):
                found["auth_scheme"] = found.get("auth_scheme", "") + scheme[key]
        return found


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class TenantOAuthClient(SealedSecretModel):
    """A tenant's own OAuth2 client at a provider; the client secret is sealed by the vault."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="oauth_clients")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="oauth_clients")
    client_id = models.CharField(max_length=255)
    scopes = models.JSONField(
        default=list, blank=True, help_text="Overrides the app's default scopes when set."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth client"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "app"], name="oauthclient_unique_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.app} client of {self.tenant}"


class Flow(models.Model):
    """A tenant's integration: the apps it uses, its settings schema and its workflows."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    apps = models.ManyToManyField(App, related_name="flows")
    settings_schema = models.JSONField(
        default=dict, blank=True, help_text="A JSON Schema for the end user's settings form."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="flow_unique_name_per_tenant"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published"]), name="flow_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        import jsonschema

        if self.settings_schema:
            try:
                jsonschema.Draft202012Validator.check_schema(self.settings_schema)
            except jsonschema.SchemaError as exc:
                raise ValidationError(
                    {"settings_schema": f"Not a valid JSON Schema: {exc.message}"}
                ) from exc


class Workflow(models.Model):
    """A part of a flow the end user can switch on or off, and what it does when triggered.

    Its definition (``steps``, ``response``) is checked by
    ``integrations.services.workflows.workflow_definition_check`` whenever it is saved.
    """

    class Trigger(models.TextChoices):
        REQUEST = "request", "Request (POST /api/v1/workflows/{id}/run)"
        URL = "url", "Trigger URL"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="workflows")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    enabled_by_default = models.BooleanField(default=True)
    is_enabled = models.BooleanField(
        "enabled", default=True, help_text="A disabled workflow runs for nobody."
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.REQUEST)
    input_schema = models.JSONField(
        default=dict, blank=True, help_text="A JSON Schema the trigger input must match."
    )
    steps = models.JSONField(
        default=list,
        blank=True,
        help_text='HTTP requests to the flow\'s apps, in order: [{"name", "app", "method", '
        '"path", "query"?, "headers"?, "body"?}]; strings may hold {{ templates }}.',
    )
    response = models.JSONField(
        default=dict, blank=True, help_text="The answer, with {{ templates }} over the results."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "key"], name="workflow_unique_key_per_flow"),
            models.CheckConstraint(
                condition=Q(trigger__in=["request", "url"]), name="workflow_trigger_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict:
        """What a run executes, as stored with the run."""
        return {
            "key": self.key,
            "name": self.name,
            "trigger": self.trigger,
            "input_schema": self.input_schema,
            "steps": self.steps,
            "response": self.response,
        }


class FlowVersion(models.Model):
    """A published flow, frozen: its apps, settings schema and workflow definitions.

    Publishing makes one; installations run the version they are on (Tray's solution versions).
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    apps = models.JSONField(default=list, help_text="The slugs of the flow's apps.")
    settings_schema = models.JSONField(default=dict, blank=True)
    workflows = models.JSONField(default=dict, help_text="Each workflow's definition, by key.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["flow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flowversion_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"

    def required_settings(self) -> set[str]:
        schema = self.settings_schema if isinstance(self.settings_schema, dict) else {}
        return set(schema.get("required") or [])


class Deployment(models.Model):
    """A tenant's set of flows offered to end users while active."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    flows = models.ManyToManyField(Flow, related_name="deployments", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="deployment_unique_name_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Installation(models.Model):
    """An end user's instance of a flow, with the credential it uses for each of the flow's apps."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="installations")
    end_user = models.ForeignKey(
        "accounts.EndUser", on_delete=models.CASCADE, related_name="installations"
    )
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="installations")
    enabled = models.BooleanField(default=False)
    disabled_reason = models.CharField(max_length=300, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    enabled_workflows = models.ManyToManyField(Workflow, blank=True, related_name="installations")
    flow_version = models.ForeignKey(
        FlowVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The version it runs; empty before the flow's first publication.",
    )
    pending_version = models.ForeignKey(
        FlowVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="A breaking update waiting for the end user (see needs_action).",
    )
    needs_action = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the end user must add to move to the pending version: apps, settings.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["tenant", "end_user", "flow"], name="installation_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.flow} for {self.end_user}"


class InstallationCredential(models.Model):
    """Which credential an installation uses for one app of its flow."""

    installation = models.ForeignKey(
        Installation, on_delete=models.CASCADE, related_name="credential_links"
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    credential = models.ForeignKey(
        "Credential", on_delete=models.CASCADE, related_name="installation_links"
    )

    class Meta:
        verbose_name = "credential in use"
        verbose_name_plural = "credentials in use"
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "app"], name="installationcredential_one_per_app"
            )
        ]

    def __str__(self) -> str:
        return f"{self.app}: {self.credential}"


class WebhookEndpoint(SealedSecretModel):
    """Where a tenant receives signed webhooks; the signing secret (``whsec_…``) is sealed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types to send; empty sends every type."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and (not self.event_types or event_type in self.event_types)


class Event(models.Model):
    """The outbox: written in the same transaction as the change it reports."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="event_tenant_created"),
            models.Index(fields=["tenant", "type", "-created_at"], name="event_tenant_type"),
            # One end user's events (the admin's support timeline): data->'user_id' is how an
            # event names its user, and the query compares it as jsonb.
            models.Index(
                F("tenant"),
                KeyTransform("user_id", "data"),
                F("created_at").desc(),
                name="event_tenant_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def payload(self) -> dict:
        return {
            "id": str(self.id),
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "data": self.data,
        }


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: at least once, retried with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: ``delivery_once_per_endpoint`` (event, endpoint) leads with it.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The sweep's lease, in no index (as a credential's): a claim rewrites the row in place.
    leased_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="delivery_once_per_endpoint"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.endpoint}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery, with what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attempted_at"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} at {self.attempted_at:%H:%M:%S}"


class ConnectSession(models.Model):
    """A short-lived, revocable ticket that opens the modal for one end user.

    Only the SHA-256 of the token is stored; the token itself travels in the session URL and,
    from the modal, in a request header, never in a cookie.
    """

    class Source(models.TextChoices):
        API = "api", "Sessions API"
        USER_HASH = "user_hash", "User hash"
        DEMO = "demo", "Demo"
        # A link the tenant hands to another person (e.g. the customer's admin who holds the
        # credentials): days instead of an hour, optionally single use, its opens recorded.
        HANDOFF = "handoff", "Hand-off link"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connect_sessions")
    end_user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="connect_sessions")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    deployment = models.ForeignKey("Deployment", null=True, blank=True, on_delete=models.CASCADE)
    apps = models.ManyToManyField(
        "App",
        blank=True,
        related_name="+",
        help_text="When set, only these apps are offered.",
    )
    allow_multiple = models.BooleanField(
        default=True, help_text="Offer 'Add another account' for an app already connected."
    )
    redirect_uri = models.URLField(max_length=1000, blank=True)
    theme = models.JSONField(default=dict, blank=True)
    locale = models.CharField(
        max_length=8,
        blank=True,
        help_text="The modal's language (one of LANGUAGES); empty: the browser's choice.",
    )
    consumer_metadata = models.JSONField(default=dict, blank=True)
    custom_settings = models.JSONField(default=dict, blank=True)
    used_from_origin = models.CharField(max_length=255, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    recipient_name = models.CharField(
        max_length=200, blank=True, help_text="Hand-off links: who the link was made for."
    )
    recipient_email = models.EmailField(blank=True)
    single_use = models.BooleanField(
        default=False, help_text="Spent once an account has been connected through it."
    )
    spent_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "connect session"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="session_tenant_created"),
            models.Index(fields=["expires_at"], name="session_expires"),
        ]

    def __str__(self) -> str:
        return f"Session for {self.end_user} until {self.expires_at:%Y-%m-%d %H:%M}"

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired()

    @property
    def is_handoff(self) -> bool:
        return self.source == self.Source.HANDOFF

    @property
    def is_spent(self) -> bool:
        return self.spent_at is not None

    @property
    def status(self) -> str:
        """revoked, spent, expired or open: what the API and the admin show."""
        if self.revoked_at is not None:
            return "revoked"
        if self.spent_at is not None:
            return "spent"
        return "expired" if self.is_expired() else "open"

    def clean(self) -> None:
        self.theme = validate_theme(self.theme)
        if self.redirect_uri:
            validate_http_url(self.redirect_uri, field="redirect_uri")


class ConnectSessionOpen(models.Model):
    """A hand-off link opened in a browser: when, and a coarse description of the client
    ("Chrome on Windows"). Never the token, the address or the full User-Agent."""

    session = models.ForeignKey(ConnectSession, on_delete=models.CASCADE, related_name="opens")
    opened_at = models.DateTimeField(default=timezone.now, editable=False)
    client = models.CharField(max_length=80, blank=True)

    class Meta:
        verbose_name = "hand-off link open"
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["session", "-opened_at"], name="session_open_recent")]

    def __str__(self) -> str:
        return f"Opened {self.opened_at:%Y-%m-%d %H:%M} ({self.client or 'unknown client'})"


class Credential(SealedSecretModel):
    """A connected account: an end user's credential for one app, its secret sealed by the vault.

    An end user may hold several credentials for one app, but one provider identity only once.
    """

    class Status(models.TextChoices):
        # Translated: end users read these on the modal's status badges.
        PENDING = "pending", _("Verifying")
        ACTIVE = "active", _("Connected")
        INVALID = "invalid", _("Failed")
        EXPIRED = "expired", _("Expired")
        REVOKED = "revoked", _("Revoked")

    # Statuses in which a credential may be used: connected, or still being verified.
    USABLE_STATUSES = (Status.ACTIVE, Status.PENDING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: ``credential_owner`` and ``credential_tenant_status`` lead with it.
    # Every index is one more entry to write whenever a row gets a new version.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="credentials", db_index=False
    )
    end_user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="credentials")
    app = models.ForeignKey("App", on_delete=models.PROTECT, related_name="credentials")
    label = models.CharField(max_length=MAX_LABEL_LENGTH, blank=True)
    identity = models.CharField(
        max_length=255, blank=True, help_text="The account at the provider, read by verification."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    secret_hint = models.CharField(
        max_length=16, blank=True, editable=False, help_text="The last characters of the secret."
    )
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the access token expires (OAuth2)."
    )
    refresh_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the access token is due for refresh."
    )
    last_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_verification_error = models.TextField(blank=True, editable=False)
    verification_attempts = models.PositiveIntegerField(default=0, editable=False)
    next_verification_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The sweeps' leases (``integrations.services.sweeps``): a claimed row is not due again
    # before its lease ends. They are in no index, not even an index's condition, so that a
    # claim rewrites each row in place on its page (a HOT update) rather than adding a
    # version of the row to every index (the table keeps room on its pages for that).
    refresh_leased_until = models.DateTimeField(null=True, blank=True, editable=False)
    verification_leased_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # The vault's key id without the index sealed models have: nothing looks credentials up
    # by it (key rotation walks them by primary key).
    secret_key_id = models.CharField(max_length=32, blank=True, editable=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["end_user", "app", "identity"],
                condition=~Q(identity=""),
                name="credential_identity_once_per_user_app",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "active", "invalid", "expired", "revoked"]),
                name="credential_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "end_user", "app"], name="credential_owner"),
            models.Index(fields=["tenant", "status"], name="credential_tenant_status"),
            # The sweeps of the background jobs: each selects what is due through one of these.
            models.Index(
                fields=["refresh_at"],
                condition=Q(status="active", refresh_at__isnull=False),
                name="credential_refresh_due",
            ),
            models.Index(
                fields=["next_verification_at"],
                condition=Q(status="active", next_verification_at__isnull=False),
                name="credential_reverify_due",
            ),
            models.Index(
                fields=["updated_at"], condition=Q(status="pending"), name="credential_pending"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.label or self.identity or f"{self.app} account"


class OAuthAttempt(SealedSecretModel):
    """One OAuth2 authorization started from the modal: its state, PKCE verifier and outcome.

    The ``state`` sent to the provider is stored only as its SHA-256; the PKCE code verifier
    (and, for the full-page redirect, the session token that leads back to the modal) are sealed
    by the vault and cleared once the callback has used them. A state is single-use
    (``used_at``), bound to one connect session and one app, and expires after ten minutes.
    """

    LIFETIME_SECONDS = 600

    class Mode(models.TextChoices):
        POPUP = "popup", "Popup"
        REDIRECT = "redirect", "Full-page redirect"

    class Purpose(models.TextChoices):
        CONNECT = "connect", "Connect an account"
        RECONNECT = "reconnect", "Reconnect an account"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting for the provider"
        CONNECTED = "connected", "Connected"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(
        "ConnectSession", on_delete=models.CASCADE, related_name="oauth_attempts"
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    flow = models.ForeignKey(
        Flow, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CONNECT)
    reconnect = models.ForeignKey(
        "Credential",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The account whose secret this authorization replaces.",
    )
    credential = models.ForeignKey(
        "Credential",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The account this authorization connected.",
    )
    state_hash = models.CharField(max_length=64, unique=True, editable=False)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.POPUP)
    return_query = models.CharField(max_length=1000, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    error_code = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=600, blank=True)
    identity = models.CharField(max_length=255, blank=True)
    already_existed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OAuth attempt"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["pending", "connected", "failed", "cancelled"]),
                name="oauthattempt_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["popup", "redirect"]), name="oauthattempt_mode_valid"
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], name="oauthattempt_expires")]

    def __str__(self) -> str:
        return f"{self.app} sign-in ({self.get_outcome_display()})"

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    @property
    def is_finished(self) -> bool:
        return self.outcome != self.Outcome.PENDING


class WorkflowRun(models.Model):
    """One run of a workflow for one installation: what ran, as whom, and how it ended."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        REQUEST = "request", "Request"
        URL = "url", "Trigger URL"
        RERUN = "rerun", "Re-run by staff"

    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflow_runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    flow_version = models.PositiveIntegerField(null=True, blank=True)
    installation = models.ForeignKey(
        Installation, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    end_user = models.ForeignKey(
        EndUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    definition = models.JSONField(default=dict, help_text="The workflow's definition that ran.")
    output = models.JSONField(null=True, blank=True, help_text="The mapped response.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    failed_step = models.CharField(max_length=100, blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    queued_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When its job was last queued (empty: it runs in the request that made it).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "workflow run"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]),
                name="workflowrun_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(trigger__in=["request", "url", "rerun"]),
                name="workflowrun_trigger_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="workflowrun_tenant_created"),
            models.Index(fields=["created_at"], name="workflowrun_created"),
            # The recovery sweep reads only the few runs not yet finished.
            models.Index(
                fields=["created_at"],
                condition=Q(status__in=["queued", "running"]),
                name="workflowrun_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.definition.get('name', 'Workflow')} run ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES


class WorkflowRunCredential(models.Model):
    """The credential a run used for one app (kept by id: history outlives the account)."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="credentials_used")
    app_slug = models.SlugField(max_length=64)
    credential_id = models.UUIDField(db_index=True)

    class Meta:
        verbose_name = "credential used"
        constraints = [
            models.UniqueConstraint(fields=["run", "app_slug"], name="runcredential_one_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.app_slug}: {self.credential_id}"


class WorkflowRunStep(models.Model):
    """One step of a run: the request sent and what came back (an excerpt, secrets redacted)."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    app_slug = models.SlugField(max_length=64)
    credential_id = models.UUIDField(null=True, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=1000)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)

    class Meta:
        verbose_name = "run step"
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="runstep_unique_position")
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"


class WorkflowTrigger(models.Model):
    """The secret trigger URL of one installation's URL-triggered workflow (Tray's triggerUrl).

    The URL holds 256 random bits; only their SHA-256 is stored, so the URL is shown once, when
    it is issued or rotated.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflow_triggers")
    installation = models.ForeignKey(
        Installation, on_delete=models.CASCADE, related_name="workflow_triggers"
    )
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="triggers")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "workflow trigger URL"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "workflow"], name="workflowtrigger_one_per_installation"
            )
        ]

    def __str__(self) -> str:
        return f"Trigger URL of {self.workflow} for {self.installation}"
