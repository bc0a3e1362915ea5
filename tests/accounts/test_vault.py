"""The vault: AES-256-GCM bound to its row, a keyring, clear errors."""

import base64
import secrets

import pytest
from django.test import override_settings

from core import vault
from core.vault import (
    DecryptionError,
    Keyring,
    UnknownKeyError,
    VaultNotConfiguredError,
    open_secret,
    seal_secret,
)
from integrations.models import Credential
from tests import factories


def _entry(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@pytest.fixture
def credential(end_user):
    app = factories.make_api_key_app()
    return factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": "sk_live_round"}
    )


def test_round_trip_returns_the_payload(credential):
    credential.refresh_from_db()
    assert open_secret(credential) == {"api_key": "sk_live_round"}


def test_each_encryption_uses_a_fresh_nonce(credential):
    seal_secret(credential, {"api_key": "same"})
    first = bytes(credential.secret_ciphertext)
    seal_secret(credential, {"api_key": "same"})
    second = bytes(credential.secret_ciphertext)
    assert first[1:13] != second[1:13]
    assert first != second


def test_the_ciphertext_does_not_contain_the_plaintext(credential):
    assert b"sk_live_round" not in bytes(credential.secret_ciphertext)


def test_tampered_ciphertext_is_refused_with_a_clear_error(credential):
    blob = bytearray(credential.secret_ciphertext)
    blob[-1] ^= 0x01
    credential.secret_ciphertext = bytes(blob)
    with pytest.raises(DecryptionError, match="altered, copied from another record"):
        open_secret(credential)


def test_ciphertext_copied_onto_another_row_does_not_decrypt(credential, end_user):
    other = factories.make_credential(
        end_user=end_user, app=credential.app, secret={"api_key": "x"}
    )
    Credential.objects.filter(pk=other.pk).update(
        secret_ciphertext=credential.secret_ciphertext, secret_key_id=credential.secret_key_id
    )
    other.refresh_from_db()
    with pytest.raises(DecryptionError):
        open_secret(other)


def test_ciphertext_of_another_tenant_does_not_decrypt(credential, other_tenant):
    foreign_user = factories.make_end_user(tenant=other_tenant)
    stolen = factories.make_credential(end_user=foreign_user, app=credential.app)
    stolen.secret_ciphertext, stolen.secret_key_id = (
        credential.secret_ciphertext,
        credential.secret_key_id,
    )
    stolen.pk = credential.pk  # even the same row id under another tenant is refused
    with pytest.raises(DecryptionError):
        open_secret(stolen)


def test_unknown_key_id_is_refused_with_a_message_naming_the_key(credential):
    with override_settings(PORTAL_ENCRYPTION_KEYS=_entry("fresh")):
        with pytest.raises(UnknownKeyError, match=credential.secret_key_id):
            open_secret(credential)


def test_wrong_key_material_under_the_same_id_is_refused(credential):
    with override_settings(PORTAL_ENCRYPTION_KEYS=_entry(credential.secret_key_id)):
        with pytest.raises(DecryptionError, match="not the one that encrypted it"):
            open_secret(credential)


def test_older_keys_still_decrypt_and_the_newest_encrypts(credential):
    old_keys = vault.get_keyring()
    newest = _entry("newest")
    raw = ",".join(
        [newest] + [f"{k}:{base64.b64encode(v).decode()}" for k, v in old_keys.keys.items()]
    )
    with override_settings(PORTAL_ENCRYPTION_KEYS=raw):
        assert open_secret(credential) == {"api_key": "sk_live_round"}
        seal_secret(credential, {"api_key": "next"})
        assert credential.secret_key_id == "newest"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "no encryption key"),
        ("nokey", "is not 'kid:base64key'"),
        ("k1:not-base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "AES-256 needs 32"),
        (f"{_entry('k1')},{_entry('k1')}", "appears twice"),
    ],
    # Fixed ids: the keys are random, and pytest-xdist needs the same ids in every worker.
    ids=["empty", "no-separator", "not-base64", "short-key", "duplicate-id"],
)
def test_a_bad_keyring_gives_a_clear_error(raw, message):
    with pytest.raises(VaultNotConfiguredError, match=message):
        Keyring.parse(raw, source="PORTAL_ENCRYPTION_KEYS")


def test_no_key_configured_is_a_clear_error_not_a_crash(credential):
    with override_settings(PORTAL_ENCRYPTION_KEYS="", PORTAL_ENCRYPTION_KEYS_FILE=""):
        with pytest.raises(VaultNotConfiguredError, match="No encryption key is configured"):
            open_secret(credential)


def test_a_missing_key_file_is_a_clear_error(tmp_path, credential):
    missing = tmp_path / "gone.keys"
    with override_settings(PORTAL_ENCRYPTION_KEYS="", PORTAL_ENCRYPTION_KEYS_FILE=str(missing)):
        with pytest.raises(VaultNotConfiguredError, match="Cannot read the key file"):
            open_secret(credential)


def test_the_keyring_can_come_from_a_file(tmp_path, end_user):
    keyfile = tmp_path / "portal.keys"
    keyfile.write_text(_entry("filekey") + "\n")
    with override_settings(PORTAL_ENCRYPTION_KEYS="", PORTAL_ENCRYPTION_KEYS_FILE=str(keyfile)):
        app = factories.make_api_key_app()
        credential = factories.make_credential(end_user=end_user, app=app, secret={"api_key": "f"})
        assert credential.secret_key_id == "filekey"
        assert open_secret(credential) == {"api_key": "f"}
