"""The credential vault: AES-256-GCM with a keyring, bound to the row that owns each ciphertext.

Every encryption uses a fresh 96-bit nonce. The associated data names the model, the tenant and
the row, so a ciphertext copied onto another row (or another model) fails to decrypt. Each
ciphertext is stored with the id of the key that made it; the keyring holds several keys, the
first of which encrypts while all of them decrypt, which is what lets ``vault_rotate`` move
secrets to a new key without downtime.

The keyring is read lazily, on first use, so a lost or wrong key surfaces as a clear
``VaultError`` where a secret is needed instead of a process that cannot start.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver

from core.conf import conf

FORMAT_VERSION = b"\x01"
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class VaultError(Exception):
    """A secret cannot be sealed or opened. The message says why and what to do."""


class VaultNotConfiguredError(VaultError):
    pass


class UnknownKeyError(VaultError):
    pass


class DecryptionError(VaultError):
    pass


@dataclass(frozen=True)
class Keyring:
    """Keys by id, in order: the first one encrypts, every one decrypts."""

    keys: dict[str, bytes]

    @property
    def current_key_id(self) -> str:
        return next(iter(self.keys))

    @classmethod
    def parse(cls, raw: str, *, source: str) -> Keyring:
        keys: dict[str, bytes] = {}
        entries = [entry.strip() for entry in re.split(r"[,\n]", raw) if entry.strip()]
        if not entries:
            raise VaultNotConfiguredError(f"{source} holds no encryption key.")
        for position, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not KEY_ID_PATTERN.match(key_id):
                raise VaultNotConfiguredError(
                    f"Entry {position} of {source} is not 'kid:base64key' with a key id of "
                    "letters, digits, '.', '_' or '-' (at most 32)."
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise VaultNotConfiguredError(
                    f"The key '{key_id}' in {source} is not valid base64."
                ) from exc
            if len(key) != 32:
                raise VaultNotConfiguredError(
                    f"The key '{key_id}' in {source} is {len(key)} bytes; AES-256 needs 32."
                )
            if key_id in keys:
                raise VaultNotConfiguredError(f"The key id '{key_id}' appears twice in {source}.")
            keys[key_id] = key
        return cls(keys=keys)


@cache
def get_keyring() -> Keyring:
    raw = conf.ENCRYPTION_KEYS
    source = "PORTAL_ENCRYPTION_KEYS"
    if not raw and conf.ENCRYPTION_KEYS_FILE:
        path = Path(conf.ENCRYPTION_KEYS_FILE)
        source = f"the key file {path}"
        try:
            raw = path.read_text()
        except OSError as exc:
            raise VaultNotConfiguredError(
                f"Cannot read {source} ({exc.strerror}). Restore the file or set "
                "PORTAL_ENCRYPTION_KEYS."
            ) from exc
    if not raw:
        raise VaultNotConfiguredError(
            "No encryption key is configured. Set PORTAL_ENCRYPTION_KEYS to 'kid:base64key' "
            "entries (newest first); `manage.py vault_generate_key` prints a new one."
        )
    return Keyring.parse(raw, source=source)


@receiver(setting_changed)
def _forget_keyring(*, setting: str, **kwargs: Any) -> None:
    if setting in {"PORTAL_ENCRYPTION_KEYS", "PORTAL_ENCRYPTION_KEYS_FILE"}:
        get_keyring.cache_clear()


def encrypt(plaintext: bytes, *, associated_data: bytes) -> tuple[str, bytes]:
    """Encrypt under the current key. Returns the key id and ``version || nonce || ciphertext``."""
    keyring = get_keyring()
    key_id = keyring.current_key_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.keys[key_id]).encrypt(nonce, plaintext, associated_data)
    return key_id, FORMAT_VERSION + nonce + sealed


def decrypt(key_id: str, blob: bytes, *, associated_data: bytes) -> bytes:
    keyring = get_keyring()
    key = keyring.keys.get(key_id)
    if key is None:
        raise UnknownKeyError(
            f"This secret was encrypted with key '{key_id}', which is not in the keyring. "
            "Add that key back to PORTAL_ENCRYPTION_KEYS (after the current one) to read it."
        )
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != FORMAT_VERSION:
        raise DecryptionError("The stored secret is truncated or not in the vault's format.")
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, associated_data)
    except InvalidTag as exc:
        raise DecryptionError(
            f"The stored secret does not decrypt under key '{key_id}': it was altered, copied "
            "from another record, or the key with that id is not the one that encrypted it."
        ) from exc


class SealedSecretModel(models.Model):
    """A row that owns one secret, encrypted by the vault and bound to this row and tenant.

    The ciphertext is never editable and never rendered; this module seals and opens it.
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


def seal_secret(instance: SealedSecretModel, payload: dict[str, Any]) -> None:
    """Encrypt ``payload`` onto the instance's secret fields (the caller saves the instance)."""
    plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    key_id, blob = encrypt(plaintext, associated_data=instance.vault_associated_data())
    instance.secret_key_id = key_id
    instance.secret_ciphertext = blob


def open_secret(instance: SealedSecretModel) -> dict[str, Any]:
    """Decrypt the instance's secret. An instance without a secret opens to an empty dict."""
    if not instance.secret_ciphertext:
        return {}
    plaintext = decrypt(
        instance.secret_key_id,
        instance.secret_ciphertext,
        associated_data=instance.vault_associated_data(),
    )
    return json.loads(plaintext)


def clear_secret(instance: SealedSecretModel) -> None:
    instance.secret_key_id = ""
    instance.secret_ciphertext = None
