"""Key rotation: every secret moves to the newest key, none is lost, interrupted runs resume."""

import base64
import secrets
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.services.tenants import tenant_create, tenant_signing_secret
from accounts.services.vault_rotation import vault_rotate
from core import vault
from core.vault import open_secret
from integrations.models import Credential
from tests import factories


def _keyring_with_new_key(new_id: str = "rotated") -> str:
    current = vault.get_keyring()
    entries = [f"{k}:{base64.b64encode(v).decode()}" for k, v in current.keys.items()]
    return ",".join([f"{new_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}", *entries])


@pytest.fixture
def many_credentials(end_user):
    app = factories.make_api_key_app()
    return {
        factories.make_credential(
            end_user=end_user, app=app, secret={"api_key": f"key-{i}"}
        ).pk: f"key-{i}"
        for i in range(23)
    }


def test_rotation_moves_every_secret_to_the_newest_key_without_losing_one(many_credentials):
    tenant = tenant_create(name="Rotating tenant")
    signing_secret = tenant_signing_secret(tenant=tenant)
    with override_settings(PORTAL_ENCRYPTION_KEYS=_keyring_with_new_key()):
        report = vault_rotate(batch_size=5)
        assert report.failed == 0
        assert report.rotated == len(many_credentials) + 1
        for credential in Credential.objects.filter(pk__in=many_credentials):
            assert credential.secret_key_id == "rotated"
            assert open_secret(credential) == {"api_key": many_credentials[credential.pk]}
        tenant.refresh_from_db()
        assert tenant.secret_key_id == "rotated"
        assert tenant_signing_secret(tenant=tenant) == signing_secret


def test_rotation_interrupted_halfway_resumes_and_loses_nothing(many_credentials):
    with override_settings(PORTAL_ENCRYPTION_KEYS=_keyring_with_new_key()):
        calls = []

        def interrupt(state):
            calls.append(state.rotated)
            if len(calls) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            vault_rotate(batch_size=5, progress=interrupt)
        halfway = Credential.objects.filter(secret_key_id="rotated").count()
        assert 0 < halfway < len(many_credentials)

        report = vault_rotate(batch_size=5)
        assert report.rotated == len(many_credentials) - halfway
        for credential in Credential.objects.filter(pk__in=many_credentials):
            assert credential.secret_key_id == "rotated"
            assert open_secret(credential) == {"api_key": many_credentials[credential.pk]}


def test_rotation_run_twice_touches_nothing_the_second_time(many_credentials):
    with override_settings(PORTAL_ENCRYPTION_KEYS=_keyring_with_new_key()):
        vault_rotate()
        before = dict(Credential.objects.values_list("pk", "secret_ciphertext"))
        report = vault_rotate()
        after = dict(Credential.objects.values_list("pk", "secret_ciphertext"))
    assert report.rotated == 0
    assert {pk: bytes(v) for pk, v in before.items()} == {pk: bytes(v) for pk, v in after.items()}


def test_a_secret_under_a_lost_key_is_reported_and_left_untouched(many_credentials):
    victim = Credential.objects.get(pk=next(iter(many_credentials)))
    Credential.objects.filter(pk=victim.pk).update(secret_key_id="lost")
    out, err = StringIO(), StringIO()
    with override_settings(PORTAL_ENCRYPTION_KEYS=_keyring_with_new_key()):
        with pytest.raises(CommandError, match="could not be decrypted"):
            call_command("vault_rotate", batch_size=4, stdout=out, stderr=err)
    assert "lost" in err.getvalue()
    assert Credential.objects.get(pk=victim.pk).secret_key_id == "lost"
    assert Credential.objects.filter(secret_key_id="rotated").count() == len(many_credentials) - 1


def test_the_command_reports_progress_and_key_usage(many_credentials):
    out = StringIO()
    with override_settings(PORTAL_ENCRYPTION_KEYS=_keyring_with_new_key()):
        call_command("vault_rotate", batch_size=10, stdout=out)
        call_command("vault_rotate", status=True, stdout=out)
    text = out.getvalue()
    assert "integrations.Credential: 10/23 re-encrypted" in text
    assert "integrations.Credential: 23/23 re-encrypted" in text
    assert "integrations.Credential: rotated: 23" in text
