"""The sandbox services: accounts, seeding, OAuth clients and API keys, on the real database."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from oauth2_provider.models import Application

from sandbox.models import SandboxAccount, SandboxApiKey, SandboxItem
from sandbox.services import (
    SANDBOX_PASSWORD,
    SandboxAuthenticationError,
    sandbox_account_authenticate,
    sandbox_account_ensure,
    sandbox_api_key_authenticate,
    sandbox_api_key_create,
    sandbox_api_key_revoke,
    sandbox_api_request_authenticate,
    sandbox_application_ensure,
    sandbox_item_create,
    sandbox_seed,
)

pytestmark = pytest.mark.django_db


def test_account_ensure_creates_a_non_staff_user_without_an_email():
    account = sandbox_account_ensure(email="Dora@Sandbox.test", display_name="Dora", password="pw")

    assert account.email == "dora@sandbox.test"
    assert account.user.username == "sandbox:dora@sandbox.test"
    assert not account.user.is_staff
    assert not account.user.is_superuser
    assert account.user.email == ""
    assert account.user.check_password("pw")


def test_account_ensure_again_updates_name_and_password_of_the_same_account():
    first = sandbox_account_ensure(email="dora@sandbox.test", display_name="Dora", password="pw")

    again = sandbox_account_ensure(
        email="dora@sandbox.test", display_name="Dora D.", password="new"
    )

    assert again.pk == first.pk
    assert again.user_id == first.user_id
    again.refresh_from_db()
    assert again.display_name == "Dora D."
    assert again.user.check_password("new")
    assert SandboxAccount.objects.count() == 1


def test_seed_creates_the_three_demo_accounts_with_items_and_can_run_twice():
    first = sandbox_seed()
    second = sandbox_seed()

    assert [account.email for account in first] == [
        "alice@sandbox.test",
        "bob@sandbox.test",
        "carol@sandbox.test",
    ]
    assert [account.pk for account in second] == [account.pk for account in first]
    assert SandboxAccount.objects.count() == 3
    assert SandboxItem.objects.count() == 6
    assert sandbox_account_authenticate(email="bob@sandbox.test", password=SANDBOX_PASSWORD)


def test_account_authenticate_refuses_a_wrong_password_and_an_unknown_email():
    sandbox_seed()

    assert sandbox_account_authenticate(email="alice@sandbox.test", password="nope") is None
    assert sandbox_account_authenticate(email="nobody@sandbox.test", password="sandbox") is None


def test_application_ensure_registers_a_confidential_pkce_client_with_a_hashed_secret():
    application = sandbox_application_ensure(
        client_id="cid", client_secret="the-secret", redirect_uris=["https://a.example/cb"]
    )

    application.refresh_from_db()
    assert application.client_type == Application.CLIENT_CONFIDENTIAL
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert application.skip_authorization is False
    assert application.algorithm == ""
    assert application.name == "Connect portal"
    assert application.client_secret != "the-secret"
    assert check_password("the-secret", application.client_secret)


def test_application_ensure_again_keeps_the_secret_working_and_updates_the_rest():
    first = sandbox_application_ensure(
        client_id="cid", client_secret="the-secret", redirect_uris=["https://a.example/cb"]
    )
    again = sandbox_application_ensure(
        client_id="cid",
        client_secret="the-secret",
        redirect_uris=["https://a.example/cb", "https://b.example/cb"],
        name="Renamed",
    )

    assert again.pk == first.pk
    again.refresh_from_db()
    assert check_password("the-secret", again.client_secret)
    assert again.redirect_uris == "https://a.example/cb https://b.example/cb"
    assert again.name == "Renamed"
    assert Application.objects.count() == 1


def test_application_ensure_with_a_new_secret_replaces_the_old_one():
    sandbox_application_ensure(
        client_id="cid", client_secret="old-secret", redirect_uris=["https://a.example/cb"]
    )

    application = sandbox_application_ensure(
        client_id="cid", client_secret="new-secret", redirect_uris=["https://a.example/cb"]
    )

    application.refresh_from_db()
    assert check_password("new-secret", application.client_secret)
    assert not check_password("old-secret", application.client_secret)


def test_application_ensure_refuses_a_bad_redirect_uri_and_saves_nothing():
    with pytest.raises(ValidationError):
        sandbox_application_ensure(client_id="cid", client_secret="s", redirect_uris=["ftp://x/cb"])

    assert not Application.objects.exists()


def test_api_key_is_stored_only_as_a_hash_and_authenticates_its_account():
    account = sandbox_seed()[0]

    api_key, key = sandbox_api_key_create(account=account, name="portal")

    assert key.startswith("sbx_")
    assert api_key.prefix == key[:12]
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {api_key.key_hash, api_key.prefix, api_key.name}
    assert sandbox_api_key_authenticate(key=key) == account


def test_api_key_authenticate_refuses_wrong_and_revoked_keys():
    account = sandbox_seed()[0]
    api_key, key = sandbox_api_key_create(account=account, name="portal")

    assert sandbox_api_key_authenticate(key=key + "x") is None
    assert sandbox_api_key_authenticate(key="sbx_short") is None
    assert sandbox_api_key_authenticate(key="") is None
    sandbox_api_key_revoke(api_key=api_key)
    assert sandbox_api_key_authenticate(key=key) is None


def test_revoking_a_key_twice_keeps_the_first_revocation_time():
    api_key, _key = sandbox_api_key_create(account=sandbox_seed()[0], name="portal")
    sandbox_api_key_revoke(api_key=api_key)
    first = SandboxApiKey.objects.get(pk=api_key.pk).revoked_at

    sandbox_api_key_revoke(api_key=api_key)

    assert first is not None
    assert SandboxApiKey.objects.get(pk=api_key.pk).revoked_at == first


def test_api_key_needs_a_name():
    with pytest.raises(ValidationError):
        sandbox_api_key_create(account=sandbox_seed()[0], name="   ")

    assert not SandboxApiKey.objects.exists()


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("", "No credential"),
        ("Bearer ", "The Bearer access token is missing."),
        ("Basic !!!", "The Basic credentials are not valid base64."),
        ("Digest abc", "Only Bearer and Basic authorization are supported."),
    ],
)
def test_request_authenticate_says_why_it_refuses(authorization, reason):
    with pytest.raises(SandboxAuthenticationError) as refused:
        sandbox_api_request_authenticate(authorization=authorization)

    assert str(refused.value).startswith(reason)


def test_item_create_refuses_a_blank_title():
    with pytest.raises(ValidationError):
        sandbox_item_create(account=sandbox_seed()[0], title=" ")
