"""Key rotation: re-encrypt every sealed secret under the keyring's current key.

Rows are taken in primary-key order, a batch per transaction, each batch locked while it is
re-encrypted; a row already under the current key is never touched. Interrupting the command
loses nothing (a committed batch is done, an uncommitted one rolls back) and running it again
carries on, so it is idempotent. A row that does not decrypt is reported and skipped, never
overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models, transaction

from core.vault import SealedSecretModel, VaultError, decrypt, encrypt, get_keyring


@dataclass
class ModelRotation:
    label: str
    total: int = 0
    rotated: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class RotationReport:
    current_key_id: str
    models: list[ModelRotation] = field(default_factory=list)

    @property
    def rotated(self) -> int:
        return sum(model.rotated for model in self.models)

    @property
    def failed(self) -> int:
        return sum(len(model.failed) for model in self.models)


def sealed_models() -> list[type[SealedSecretModel]]:
    return [model for model in apps.get_models() if issubclass(model, SealedSecretModel)]


def vault_key_usage() -> dict[str, dict[str, int]]:
    """For each sealed model, how many secrets each key id holds."""
    usage: dict[str, dict[str, int]] = {}
    for model in sealed_models():
        rows = (
            model.objects.exclude(secret_ciphertext__isnull=True)
            .values("secret_key_id")
            .annotate(count=models.Count("pk"))
        )
        usage[model._meta.label] = {row["secret_key_id"]: row["count"] for row in rows}
    return usage


def vault_rotate(
    *,
    batch_size: int = 500,
    progress: Callable[[ModelRotation], None] | None = None,
) -> RotationReport:
    keyring = get_keyring()
    current = keyring.current_key_id
    report = RotationReport(current_key_id=current)
    for model in sealed_models():
        stale = model.objects.exclude(secret_ciphertext__isnull=True).exclude(secret_key_id=current)
        state = ModelRotation(label=model._meta.label, total=stale.count())
        report.models.append(state)
        last_pk = None
        while True:
            batch = stale.order_by("pk")
            if last_pk is not None:
                batch = batch.filter(pk__gt=last_pk)
            with transaction.atomic():
                rows = list(batch.select_for_update()[:batch_size])
                if not rows:
                    break
                changed = []
                for row in rows:
                    aad = row.vault_associated_data()
                    try:
                        plaintext = decrypt(
                            row.secret_key_id, row.secret_ciphertext, associated_data=aad
                        )
                    except VaultError as exc:
                        state.failed.append(f"{row.pk}: {exc}")
                        continue
                    row.secret_key_id, row.secret_ciphertext = encrypt(
                        plaintext, associated_data=aad
                    )
                    changed.append(row)
                model.objects.bulk_update(changed, ["secret_key_id", "secret_ciphertext"])
                state.rotated += len(changed)
                last_pk = rows[-1].pk
            if progress:
                progress(state)
    return report
