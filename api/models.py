"""The API's own records: idempotency keys and the responses they replay."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Tenant
from core.vault import SealedSecretModel


class IdempotencyKey(SealedSecretModel):
    """A tenant's ``Idempotency-Key`` and the response its first request got.

    The response is sealed by the vault like any secret: a replayed ``POST /sessions`` carries
    the session token, which must never rest in the database in plaintext. A row without a
    response is a request still in flight (or one that died: ``locked_until`` frees it).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=1000)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the method, path, query and canonical body."
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    locked_until = models.DateTimeField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "idempotency key"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "key"], name="idempotencykey_unique_per_tenant"
            )
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotencykey_expires")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"

    @property
    def is_complete(self) -> bool:
        return self.status_code is not None
