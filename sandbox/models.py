"""The sandbox provider's own records: its accounts, their API keys and the items its API serves."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SandboxAccount(models.Model):
    """An account at the sandbox provider, backed by a non-staff user so DOT can own its tokens."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sandbox_account"
    )
    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "sandbox account"
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def login(self) -> str:
        return self.email.partition("@")[0]


class SandboxApiKey(models.Model):
    """An API key of a sandbox account, stored as a SHA-256 hash; the plaintext is shown once."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "sandbox API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class SandboxItem(models.Model):
    """Something a sandbox account owns: a resource for the portal's API proxy to read and write."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="items")
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "sandbox item"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.title
