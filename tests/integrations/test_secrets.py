"""Sealing, opening and clearing a credential's secret (``integrations.services.secrets``): a
seal brings everything derived from the secret along; every open is audited with its purpose."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services.audit import Actor
from core.vault import open_secret
from integrations.models import App, Credential
from integrations.services.oauth import TokenSet
from integrations.services.secrets import (
    Purpose,
    credential_secret_clear,
    credential_secret_open,
    credential_secret_seal,
    credential_tokens_seal,
    secret_hint,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_app(db):
    return factories.make_api_key_app()


@pytest.fixture
def oauth_app(db):
    return factories.make_oauth_app(refresh_buffer_seconds=300)


def tokens(*, refresh_token: str = "rt-1", expires_in: int | None = 3600, **secret) -> TokenSet:
    expires_at = timezone.now() + timedelta(seconds=expires_in) if expires_in else None
    stored = {"access_token": "at-1", **({"refresh_token": refresh_token} if refresh_token else {})}
    return TokenSet(
        access_token="at-1",
        refresh_token=refresh_token,
        expires_at=expires_at,
        scopes=["read", "write"],
        secret={**stored, **secret},
    )


# The hint


def test_the_hint_is_the_last_four_characters_of_a_long_enough_main_secret(key_app):
    assert secret_hint(app=key_app, secret={"api_key": "sk_live_0123456789abcd"}) == "…abcd"
    assert secret_hint(app=key_app, secret={"api_key": "short-key"}) == ""
    assert secret_hint(app=key_app, secret={}) == ""


def test_the_hint_of_a_basic_app_comes_from_its_first_secret_field(db):
    app = factories.make_api_key_app(
        auth_type=App.AuthType.BASIC,
        fields=[
            {"name": "username", "label": "Username", "secret": False},
            {"name": "password", "label": "Password", "secret": True},
        ],
        auth_scheme={"in": "basic", "username": "{username}", "password": "{password}"},
    )

    hint = secret_hint(app=app, secret={"username": "ada-lovelace-0001", "password": "p" * 20})

    assert hint == "…pppp"


def test_an_oauth2_token_never_gives_a_hint(oauth_app):
    assert secret_hint(app=oauth_app, secret={"access_token": "ya29.a-long-access-token"}) == ""


# Sealing


def test_sealing_a_key_sets_its_hint_and_clears_any_token_expiry(end_user, key_app):
    credential = factories.make_credential(
        end_user=end_user,
        app=key_app,
        expires_at=timezone.now(),
        refresh_at=timezone.now(),
        secret_hint="…old!",
    )

    credential_secret_seal(credential=credential, secret={"api_key": "sk_live_0123456789wxyz"})

    assert open_secret(credential) == {"api_key": "sk_live_0123456789wxyz"}
    assert credential.secret_hint == "…wxyz"
    assert (credential.expires_at, credential.refresh_at) == (None, None)


def test_sealing_does_not_save_the_row_the_caller_does(end_user, key_app):
    credential = factories.make_credential(
        end_user=end_user, app=key_app, secret={"api_key": "before-0123456789"}
    )

    credential_secret_seal(credential=credential, secret={"api_key": "after-00123456789"})

    stored = Credential.objects.get(pk=credential.pk)
    assert open_secret(stored) == {"api_key": "before-0123456789"}
    assert stored.secret_hint == ""


def test_sealing_a_token_set_sets_scopes_expiry_and_the_refresh_schedule(end_user, oauth_app):
    credential = factories.make_credential(end_user=end_user, app=oauth_app)
    token_set = tokens()

    credential_tokens_seal(credential=credential, tokens=token_set)
    credential.save()

    credential.refresh_from_db()
    assert open_secret(credential) == {"access_token": "at-1", "refresh_token": "rt-1"}
    assert credential.scopes == ["read", "write"]
    assert credential.expires_at == token_set.expires_at
    assert credential.refresh_at == token_set.expires_at - timedelta(seconds=300)
    assert credential.secret_hint == ""


@pytest.mark.parametrize(
    ("refresh_token", "expires_in"),
    [("", 3600), ("rt-1", None)],
    ids=["without-refresh-token", "without-expiry"],
)
def test_a_token_that_cannot_be_or_need_not_be_refreshed_has_no_refresh_schedule(
    end_user, oauth_app, refresh_token, expires_in
):
    credential = factories.make_credential(
        end_user=end_user, app=oauth_app, refresh_at=timezone.now()
    )

    credential_tokens_seal(
        credential=credential, tokens=tokens(refresh_token=refresh_token, expires_in=expires_in)
    )

    assert credential.refresh_at is None


def test_a_refresh_keeps_the_extras_the_previous_secret_had_unless_the_answer_renames_them(
    end_user, oauth_app
):
    credential = factories.make_credential(end_user=end_user, app=oauth_app)
    previous = {
        "access_token": "at-0",
        "refresh_token": "rt-0",
        "extras": {"instance_url": "https://old.example.com", "team": "T1"},
    }

    credential_tokens_seal(
        credential=credential,
        tokens=tokens(extras={"instance_url": "https://new.example.com"}),
        previous=previous,
    )

    assert open_secret(credential) == {
        "access_token": "at-1",
        "refresh_token": "rt-1",
        "extras": {"instance_url": "https://new.example.com", "team": "T1"},
    }


def test_without_a_previous_secret_no_extras_are_invented(end_user, oauth_app):
    credential = factories.make_credential(
        end_user=end_user, app=oauth_app, secret={"access_token": "a", "extras": {"team": "T1"}}
    )

    credential_tokens_seal(credential=credential, tokens=tokens())

    assert "extras" not in open_secret(credential)


# Clearing


def test_clearing_destroys_the_secret_its_hint_and_its_refresh_schedule(end_user, key_app):
    credential = factories.make_credential(
        end_user=end_user, app=key_app, secret_hint="…abcd", refresh_at=timezone.now()
    )

    credential_secret_clear(credential=credential)
    credential.save()

    credential.refresh_from_db()
    assert not credential.has_secret
    assert credential.secret_hint == ""
    assert credential.refresh_at is None
    assert open_secret(credential) == {}


# Opening


@pytest.mark.parametrize("purpose", list(Purpose))
def test_every_open_is_audited_with_its_purpose_and_actor(end_user, key_app, purpose):
    credential = factories.make_credential(
        end_user=end_user, app=key_app, secret={"api_key": "sk_0123456789abcdef"}
    )
    actor = Actor.api_key("pk_live_ab")

    secret = credential_secret_open(credential=credential, actor=actor, purpose=purpose)

    assert secret == {"api_key": "sk_0123456789abcdef"}
    [entry] = AuditLogEntry.objects.filter(credential=credential)
    assert entry.action == f"credential.use.{purpose.value}"
    assert (entry.actor_type, entry.actor, entry.outcome) == ("api_key", "pk_live_ab", "success")
    assert entry.target == str(credential.pk)
    assert "sk_0123456789abcdef" not in str(entry.detail)


def test_each_open_is_its_own_audit_entry(end_user, key_app):
    credential = factories.make_credential(end_user=end_user, app=key_app)

    for purpose in (Purpose.VERIFY, Purpose.PROXY, Purpose.PROXY):
        credential_secret_open(credential=credential, actor=Actor.system(), purpose=purpose)

    actions = AuditLogEntry.objects.filter(credential=credential).values_list("action", flat=True)
    assert sorted(actions) == [
        "credential.use.proxy",
        "credential.use.proxy",
        "credential.use.verify",
    ]
