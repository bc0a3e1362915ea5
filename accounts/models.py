"""Tenancy: tenants and their staff, API keys, end users, and the audit log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.validators import validate_origins, validate_theme
from core.vault import SealedSecretModel

# A hand-off link (a connect session for another person) never lives longer than 7 days.
HANDOFF_MAX_HOURS = 7 * 24


class Tenant(SealedSecretModel):
    """A SaaS company that embeds the portal. Its sealed secret is the user-hash signing secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    own_app = models.ForeignKey(
        "integrations.App",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The tenant's own product in the catalog; never listed in its modal.",
    )
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text="Origins that may embed the modal and receive its events, e.g. https://app.example.com.",
    )
    user_hash_enabled = models.BooleanField(
        "user hash entry",
        default=True,
        help_text="Let pages open the modal with a user id and its HMAC instead of a session URL.",
    )
    default_theme = models.JSONField(default=dict, blank=True)
    handoff_max_hours = models.PositiveSmallIntegerField(
        "longest hand-off link (hours)",
        default=HANDOFF_MAX_HOURS,
        validators=[MinValueValidator(1), MaxValueValidator(HANDOFF_MAX_HOURS)],
        help_text="How long a hand-off link may stay open at most: 1 to 168 hours (7 days).",
    )
    # Replaced (never incremented, so a key can never come back) by every write that changes
    # which apps the tenant's modal lists or how: see integrations/catalog_changes.py.
    catalog_version = models.UUIDField(default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def vault_tenant_id(self) -> uuid.UUID:
        return self.pk

    def clean(self) -> None:
        self.allowed_origins = validate_origins(self.allowed_origins or [])
        self.default_theme = validate_theme(self.default_theme)


class Membership(models.Model):
    """A staff user's place in a tenant. Admins change the tenant's rows; viewers only read."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant"], name="membership_unique_user_tenant"
            ),
            models.CheckConstraint(
                condition=Q(role__in=["admin", "viewer"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) at {self.tenant}"


class TenantApiKey(models.Model):
    """A secret key for the server API, stored as a SHA-256 hash; the plaintext is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EndUser(models.Model):
    """One of a tenant's users, known by the tenant's own id for them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="end_users")
    external_id = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    account_name = models.CharField(max_length=200, blank=True)
    image_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "end user"
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"], name="enduser_unique_external_id_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.external_id


class AuditLogEntry(models.Model):
    """Who did what to which credential: every use of a decrypted secret and every change."""

    class ActorType(models.TextChoices):
        SYSTEM = "system", "System"
        STAFF = "staff", "Staff"
        API_KEY = "api_key", "API key"
        END_USER = "end_user", "End user"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_log")
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    credential = models.ForeignKey(
        "integrations.Credential",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_log",
    )
    target = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created"),
            models.Index(fields=["credential", "-created_at"], name="audit_credential_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_type}:{self.actor}"
