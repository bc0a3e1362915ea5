"""Tenants and their staff, end users, connect sessions and the credential vault's records."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.validators import validate_http_url, validate_origins, validate_theme


class SealedSecretModel(models.Model):
    """A row that owns one secret, encrypted by the vault and bound to this row and tenant.

    The ciphertext is never editable and never rendered; ``accounts.vault`` seals and opens it.
    """

    secret_key_id = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    secret_ciphertext = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def vault_tenant_id(self) -> uuid.UUID:
        return self.tenant_id

    def vault_associated_data(self) -> bytes:
        if self.pk is None:
            raise ValueError("A secret can only be sealed onto a row with a primary key.")
        return f"{self._meta.label_lower}:{self.vault_tenant_id}:{self.pk}".encode()

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_ciphertext)


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


class ConnectSession(models.Model):
    """A short-lived, revocable ticket that opens the modal for one end user.

    Only the SHA-256 of the token is stored; the token itself travels in the session URL and,
    from the modal, in a request header, never in a cookie.
    """

    class Source(models.TextChoices):
        API = "api", "Sessions API"
        USER_HASH = "user_hash", "User hash"
        DEMO = "demo", "Demo"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connect_sessions")
    end_user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="connect_sessions")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    deployment = models.ForeignKey(
        "integrations.Deployment", null=True, blank=True, on_delete=models.CASCADE
    )
    apps = models.ManyToManyField(
        "integrations.App",
        blank=True,
        related_name="+",
        help_text="When set, only these apps are offered.",
    )
    allow_multiple = models.BooleanField(
        default=True, help_text="Offer 'Add another account' for an app already connected."
    )
    redirect_uri = models.URLField(max_length=1000, blank=True)
    theme = models.JSONField(default=dict, blank=True)
    consumer_metadata = models.JSONField(default=dict, blank=True)
    custom_settings = models.JSONField(default=dict, blank=True)
    used_from_origin = models.CharField(max_length=255, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
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

    def clean(self) -> None:
        self.theme = validate_theme(self.theme)
        if self.redirect_uri:
            validate_http_url(self.redirect_uri, field="redirect_uri")


class Credential(SealedSecretModel):
    """A connected account: an end user's credential for one app, its secret sealed by the vault.

    An end user may hold several credentials for one app, but one provider identity only once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Verifying"
        ACTIVE = "active", "Connected"
        INVALID = "invalid", "Failed"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    # Statuses in which a credential may be used: connected, or still being verified.
    USABLE_STATUSES = (Status.ACTIVE, Status.PENDING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="credentials")
    end_user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="credentials")
    app = models.ForeignKey(
        "integrations.App", on_delete=models.PROTECT, related_name="credentials"
    )
    label = models.CharField(max_length=120, blank=True)
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
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

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
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_log"
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
