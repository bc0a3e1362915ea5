"""THE credential's transitions (``integrations.services.credentials``): the status each leaves,
the outbox events it writes (which, in what order) and its audit entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services.audit import Actor
from core.errors import NotFound
from core.vault import open_secret
from integrations.models import MAX_LABEL_LENGTH, Credential, Event, Installation
from integrations.services.credentials import (
    IdentityMismatch,
    NewSecret,
    credential_create,
    credential_delete,
    credential_fields_clean,
    credential_mark_expired,
    credential_mark_invalid,
    credential_mark_refreshed,
    credential_mark_verified,
    credential_note_unavailable,
    credential_reconnect,
    credential_rename,
    credential_revoke,
    label_clean,
)
from integrations.services.installations import installation_install
from integrations.services.oauth import TokenSet
from integrations.services.oauth_clients import oauth_client_set
from tests import factories

pytestmark = pytest.mark.django_db

OLD_KEY = "old-key-000000000000AAAA"
NEW_KEY = "new-key-000000000000BBBB"


def event_types(credential_id) -> list[str]:
    """The credential.* events naming this credential, oldest first."""
    return list(
        Event.objects.filter(data__credential_id=str(credential_id))
        .order_by("created_at")
        .values_list("type", flat=True)
    )


def audit_entries(credential_id) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(target=str(credential_id)).order_by("id"))


@pytest.fixture
def actor(end_user) -> Actor:
    return Actor.end_user(end_user.pk)


@pytest.fixture
def app(db):
    return factories.make_api_key_app(name="Keyed")


@pytest.fixture
def credential(end_user, app):
    """An active credential holding OLD_KEY for ada@example.com, as the factory writes it."""
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"api_key": OLD_KEY},
        identity="ada@example.com",
        label="Work",
        secret_hint="…AAAA",
    )


def _gone(credential: Credential) -> Credential:
    Credential.objects.filter(pk=credential.pk).delete()
    return credential


# credential_create


def test_create_makes_an_active_credential_with_its_identity_secret_and_hint(end_user, app, actor):
    credential = credential_create(
        end_user=end_user,
        app=app,
        new=NewSecret(secret={"api_key": NEW_KEY}),
        identity="ada@example.com",
        label="  Main \n account ",
        actor=actor,
    )

    credential = Credential.objects.get(pk=credential.pk)
    assert credential.status == Credential.Status.ACTIVE
    assert (credential.identity, credential.label) == ("ada@example.com", "Main account")
    assert open_secret(credential) == {"api_key": NEW_KEY}
    assert credential.secret_hint == "…BBBB"
    assert credential.last_verified_at is not None
    assert credential.next_verification_at is not None  # an API key is re-verified later
    assert event_types(credential.pk) == ["credential.created", "credential.verified"]
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.actor_type, entry.actor) == (
        "credential.create",
        "end_user",
        str(end_user.pk),
    )


def test_create_of_an_oauth2_account_seals_its_tokens_with_expiry_and_refresh_schedule(
    end_user, actor
):
    app = factories.make_oauth_app(refresh_buffer_seconds=600)
    expires_at = timezone.now() + timedelta(hours=1)
    tokens = TokenSet(
        access_token="at-1",
        refresh_token="rt-1",
        expires_at=expires_at,
        scopes=["profile", "email"],
        secret={"access_token": "at-1", "refresh_token": "rt-1"},
    )

    credential = credential_create(
        end_user=end_user,
        app=app,
        new=NewSecret(tokens=tokens),
        identity="ada@example.com",
        label="",
        actor=actor,
    )

    credential.refresh_from_db()
    assert open_secret(credential) == {"access_token": "at-1", "refresh_token": "rt-1"}
    assert credential.scopes == ["profile", "email"]
    assert credential.expires_at == expires_at
    assert credential.refresh_at == expires_at - timedelta(minutes=10)
    assert credential.next_verification_at is None  # the refresh sweep keeps it fresh instead
    assert event_types(credential.pk) == ["credential.created", "credential.verified"]


def test_create_refuses_an_identity_the_user_already_holds_for_the_app(
    end_user, app, credential, actor
):
    with pytest.raises(IntegrityError):
        credential_create(
            end_user=end_user,
            app=app,
            new=NewSecret(secret={"api_key": NEW_KEY}),
            identity="ada@example.com",
            label="",
            actor=actor,
        )

    assert Credential.objects.count() == 1
    assert not Event.objects.exists()
    assert not AuditLogEntry.objects.exists()


# credential_mark_verified / credential_mark_invalid / credential_note_unavailable


def test_mark_verified_makes_it_active_records_the_identity_and_clears_the_last_error(
    end_user, app, actor
):
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        status=Credential.Status.INVALID,
        last_verification_error="Bad credentials",
        verification_attempts=3,
    )

    credential_mark_verified(credential=credential, identity="ada@example.com", actor=actor)

    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.identity == "ada@example.com"
    assert (credential.last_verification_error, credential.verification_attempts) == ("", 0)
    assert event_types(credential.pk) == ["credential.verified"]
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.outcome, entry.detail) == (
        "credential.verify",
        "success",
        {"result": "verified"},
    )


def test_mark_verified_does_not_copy_an_identity_another_of_the_users_credentials_holds(
    end_user, app, credential, actor
):
    unnamed = factories.make_credential(end_user=end_user, app=app, status="pending")

    credential_mark_verified(credential=unnamed, identity="ada@example.com", actor=actor)

    unnamed.refresh_from_db()
    assert (unnamed.status, unnamed.identity) == (Credential.Status.ACTIVE, "")
    assert event_types(unnamed.pk) == ["credential.verified"]


def test_mark_invalid_records_the_providers_reason_and_stops_re_verification(credential, actor):
    credential_mark_invalid(
        credential=credential, reason="Keyed refused it: revoked", actor=actor, status_code=401
    )

    credential.refresh_from_db()
    assert credential.status == Credential.Status.INVALID
    assert credential.last_verification_error == "Keyed refused it: revoked"
    assert credential.next_verification_at is None
    assert event_types(credential.pk) == ["credential.verification_failed"]
    event = Event.objects.get()
    assert event.data["reason"] == "Keyed refused it: revoked"
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.outcome, entry.detail) == (
        "credential.verify",
        "failure",
        {"result": "rejected", "status_code": 401},
    )


def test_note_unavailable_keeps_the_status_counts_the_attempt_and_emits_nothing(credential, actor):
    credential_note_unavailable(credential=credential, actor=actor, status_code=503)

    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.verification_attempts == 1
    assert not Event.objects.exists()
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.outcome, entry.detail) == (
        "credential.verify",
        "failure",
        {"result": "unavailable", "status_code": 503},
    )


# credential_mark_refreshed / credential_mark_expired (the caller holds the row lock)


def test_mark_refreshed_seals_the_new_tokens_keeps_extras_and_reports_the_new_expiry(
    end_user, actor
):
    app = factories.make_oauth_app(refresh_buffer_seconds=900)
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "at-1", "refresh_token": "rt-1", "extras": {"team": "T1"}},
        status=Credential.Status.PENDING,
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    expires_at = timezone.now() + timedelta(hours=1)
    tokens = TokenSet(
        access_token="at-2",
        refresh_token="rt-2",
        expires_at=expires_at,
        secret={"access_token": "at-2", "refresh_token": "rt-2"},
    )

    credential_mark_refreshed(
        credential=credential, tokens=tokens, previous=open_secret(credential), actor=actor
    )

    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert open_secret(credential) == {
        "access_token": "at-2",
        "refresh_token": "rt-2",
        "extras": {"team": "T1"},
    }
    assert credential.refresh_at == expires_at - timedelta(minutes=15)
    assert credential.last_refreshed_at is not None
    assert event_types(credential.pk) == ["credential.refreshed"]
    assert Event.objects.get().data["expires_at"] == expires_at.isoformat()
    assert [entry.action for entry in audit_entries(credential.pk)] == ["credential.refresh"]


def test_mark_expired_stops_refresh_and_re_verification_and_says_why(end_user, actor):
    app = factories.make_oauth_app()
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "at-1"},
        refresh_at=timezone.now(),
        next_verification_at=timezone.now(),
    )

    credential_mark_expired(credential=credential, reason="invalid_grant", actor=actor)

    credential.refresh_from_db()
    assert credential.status == Credential.Status.EXPIRED
    assert credential.last_verification_error == "invalid_grant"
    assert (credential.refresh_at, credential.next_verification_at) == (None, None)
    assert event_types(credential.pk) == ["credential.expired"]
    assert Event.objects.get().data["reason"] == "invalid_grant"
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.detail) == ("credential.expire", {"reason": "invalid_grant"})


# credential_reconnect


def test_reconnect_puts_the_new_secret_and_its_hint_on_the_same_credential(credential, actor):
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.INVALID)

    reconnected = credential_reconnect(
        credential=credential,
        new=NewSecret(secret={"api_key": NEW_KEY}),
        identity="ada@example.com",
        actor=actor,
    )

    assert reconnected.pk == credential.pk
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert (credential.label, credential.identity) == ("Work", "ada@example.com")
    assert open_secret(credential) == {"api_key": NEW_KEY}
    assert credential.secret_hint == "…BBBB"
    assert event_types(credential.pk) == ["credential.reconnected"]
    assert Event.objects.get().data["already_exists"] is False
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.detail) == ("credential.reconnect", {"same_identity_again": False})


def test_reconnect_of_the_same_identity_again_updates_the_hint_and_says_it_already_existed(
    credential, actor
):
    credential_reconnect(
        credential=credential,
        new=NewSecret(secret={"api_key": NEW_KEY}),
        identity="ada@example.com",
        actor=actor,
        label="Another name",
        same_identity_again=True,
    )

    credential.refresh_from_db()
    assert credential.secret_hint == "…BBBB"
    assert open_secret(credential) == {"api_key": NEW_KEY}
    assert credential.label == "Work"  # a label given again does not replace the one it has
    assert Event.objects.get().data["already_exists"] is True
    assert audit_entries(credential.pk)[0].detail == {"same_identity_again": True}


def test_reconnect_gives_an_unnamed_credential_the_label_it_is_connected_with(end_user, app, actor):
    credential = factories.make_credential(end_user=end_user, app=app, identity="ada@example.com")

    credential_reconnect(
        credential=credential,
        new=NewSecret(secret={"api_key": NEW_KEY}),
        identity="ada@example.com",
        actor=actor,
        label="  Main ",
    )

    credential.refresh_from_db()
    assert credential.label == "Main"


def test_reconnect_with_another_identity_is_refused_and_changes_nothing(credential, actor):
    before = Credential.objects.get(pk=credential.pk)

    with pytest.raises(IdentityMismatch) as refused:
        credential_reconnect(
            credential=credential,
            new=NewSecret(secret={"api_key": NEW_KEY}),
            identity="bob@example.com",
            actor=actor,
        )

    assert refused.value.code == "identity_mismatch"
    assert "bob@example.com" in refused.value.message
    assert "Nothing was changed" in refused.value.message
    after = Credential.objects.get(pk=credential.pk)
    assert open_secret(after) == {"api_key": OLD_KEY}
    assert (after.secret_hint, after.identity, after.status, after.updated_at) == (
        before.secret_hint,
        before.identity,
        before.status,
        before.updated_at,
    )
    assert not Event.objects.exists()
    assert not AuditLogEntry.objects.exists()


# credential_rename


def test_rename_changes_only_the_label_and_reports_it(credential, actor):
    credential_rename(credential=credential, label=" Personal   account ", actor=actor)

    credential.refresh_from_db()
    assert credential.label == "Personal account"
    assert credential.status == Credential.Status.ACTIVE
    assert event_types(credential.pk) == ["credential.renamed"]
    assert Event.objects.get().data["credential_name"] == "Personal account"
    assert [entry.action for entry in audit_entries(credential.pk)] == ["credential.rename"]


def test_rename_to_a_label_too_long_is_refused_and_changes_nothing(credential, actor):
    with pytest.raises(ValidationError) as refused:
        credential_rename(credential=credential, label="x" * (MAX_LABEL_LENGTH + 1), actor=actor)

    assert "label" in refused.value.message_dict
    credential.refresh_from_db()
    assert credential.label == "Work"
    assert not Event.objects.exists()


# credential_revoke / credential_delete


@pytest.fixture
def installation(end_user, app, credential):
    flow = factories.make_flow(tenant=end_user.tenant, apps=[app])
    factories.make_deployment(tenant=end_user.tenant, flows=[flow])
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    assert installation.enabled
    return installation


def test_revoke_destroys_the_secret_and_disables_the_installations_that_used_it(
    credential, installation, actor
):
    credential_revoke(credential=credential, actor=actor, reason="Staff revoked it.")

    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert not credential.has_secret
    assert credential.secret_hint == ""
    assert credential.next_verification_at is None
    installation = Installation.objects.get(pk=installation.pk)
    assert not installation.enabled
    assert installation.disabled_reason == "The Keyed account Work was disconnected."
    assert event_types(credential.pk) == ["credential.revoked"]
    revoked = Event.objects.get(type="credential.revoked")
    assert revoked.data["reason"] == "Staff revoked it."
    assert revoked.data["revoked_at_provider"] is False
    [entry] = audit_entries(credential.pk)
    assert (entry.action, entry.detail) == (
        "credential.revoke",
        {"reason": "Staff revoked it.", "revoked_at_provider": False},
    )


def test_revoke_is_safe_to_call_twice_and_reports_once(credential, installation, actor):
    credential_revoke(credential=credential, actor=actor)
    again = credential_revoke(credential=credential, actor=actor)

    assert again.status == Credential.Status.REVOKED
    assert event_types(credential.pk) == ["credential.revoked"]
    assert [entry.action for entry in audit_entries(credential.pk)] == ["credential.revoke"]


def test_revoke_of_an_oauth2_account_revokes_its_tokens_at_the_provider_first(
    end_user, httpserver, actor
):
    seen: list[str] = []

    def revoke(request):
        seen.append(request.form["token"])
        return "{}"

    httpserver.expect_request("/revoke", method="POST").respond_with_handler(revoke)
    app = factories.make_oauth_app(revocation_url=httpserver.url_for("/revoke"))
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="cid", client_secret="cs")
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"access_token": "at-1", "refresh_token": "rt-1"}
    )

    credential_revoke(credential=credential, actor=actor)

    assert seen == ["rt-1", "at-1"]
    assert Event.objects.get().data["revoked_at_provider"] is True
    assert [entry.action for entry in audit_entries(credential.pk)] == [
        "credential.use.revoke",
        "credential.revoke",
    ]


def test_revoke_still_protects_the_account_when_the_provider_is_down(end_user, httpserver, actor):
    httpserver.expect_request("/revoke", method="POST").respond_with_data("down", status=503)
    app = factories.make_oauth_app(revocation_url=httpserver.url_for("/revoke"))
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="cid", client_secret="cs")
    credential = factories.make_credential(end_user=end_user, app=app, secret={"access_token": "a"})

    credential_revoke(credential=credential, actor=actor)

    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert not credential.has_secret
    assert Event.objects.get().data["revoked_at_provider"] is False


def test_delete_revokes_then_removes_the_credential_and_reports_both_in_order(
    credential, installation, actor
):
    data = credential_delete(credential=credential, actor=actor)

    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert event_types(credential.pk) == ["credential.revoked", "credential.deleted"]
    deleted = Event.objects.get(type="credential.deleted")
    assert deleted.data == data
    assert (data["credential_id"], data["identity"], data["status"]) == (
        str(credential.pk),
        "ada@example.com",
        Credential.Status.REVOKED,
    )
    assert not Installation.objects.get(pk=installation.pk).enabled
    assert [entry.action for entry in audit_entries(credential.pk)] == [
        "credential.revoke",
        "credential.delete",
    ]


def test_delete_of_a_revoked_credential_reports_only_its_deletion(credential, actor):
    credential_revoke(credential=credential, actor=actor)

    credential_delete(credential=credential, actor=actor)

    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert event_types(credential.pk) == ["credential.revoked", "credential.deleted"]


# A credential that is gone


@pytest.mark.parametrize(
    "transition",
    [
        pytest.param(
            lambda credential, actor: credential_mark_verified(
                credential=credential, identity="ada@example.com", actor=actor
            ),
            id="mark_verified",
        ),
        pytest.param(
            lambda credential, actor: credential_mark_invalid(
                credential=credential, reason="refused", actor=actor
            ),
            id="mark_invalid",
        ),
        pytest.param(
            lambda credential, actor: credential_reconnect(
                credential=credential,
                new=NewSecret(secret={"api_key": NEW_KEY}),
                identity="ada@example.com",
                actor=actor,
            ),
            id="reconnect",
        ),
        pytest.param(
            lambda credential, actor: credential_rename(
                credential=credential, label="New", actor=actor
            ),
            id="rename",
        ),
        pytest.param(
            lambda credential, actor: credential_revoke(credential=credential, actor=actor),
            id="revoke",
        ),
        pytest.param(
            lambda credential, actor: credential_delete(credential=credential, actor=actor),
            id="delete",
        ),
    ],
)
def test_a_transition_of_a_deleted_credential_is_not_found_and_writes_nothing(
    credential, actor, transition
):
    _gone(credential)

    with pytest.raises(NotFound) as gone:
        transition(credential, actor)

    assert gone.value.code == "credential_not_found"
    assert not Credential.objects.exists()
    assert not Event.objects.exists()
    assert not AuditLogEntry.objects.exists()


# credential_fields_clean / label_clean


def test_fields_clean_strips_the_values_and_names_each_bad_field(db):
    app = factories.make_api_key_app(
        fields=[
            {"name": "api_key", "label": "API key", "secret": True, "pattern": "sk_[a-z0-9]+"},
            {"name": "region", "label": "Region", "required": False, "help": "eu or us."},
        ]
    )

    assert credential_fields_clean(app=app, fields={"api_key": "  sk_abc1 "}) == {
        "api_key": "sk_abc1"
    }
    with pytest.raises(ValidationError) as refused:
        credential_fields_clean(app=app, fields={"api_key": "pk_nope", "team": "x"})

    assert refused.value.message_dict == {
        "api_key": ["API key is not in the expected format."],
        "team": [f"{app.name} has no field 'team'."],
    }


def test_fields_clean_requires_required_fields_and_text_values(app):
    with pytest.raises(ValidationError) as missing:
        credential_fields_clean(app=app, fields={"api_key": "   "})
    with pytest.raises(ValidationError) as not_text:
        credential_fields_clean(app=app, fields={"api_key": 12345})

    assert missing.value.message_dict == {"api_key": ["API key is required."]}
    assert not_text.value.message_dict == {"api_key": ["API key must be text."]}


def test_fields_clean_refuses_an_oauth2_app(db):
    with pytest.raises(ValidationError) as refused:
        credential_fields_clean(app=factories.make_oauth_app(), fields={"api_key": "k"})

    assert refused.value.code == "oauth2_app"


def test_label_clean_makes_one_line_of_single_spaces_and_refuses_a_long_label():
    assert label_clean("  Work \t\n account  ") == "Work account"
    assert label_clean("") == ""
    assert label_clean("x" * MAX_LABEL_LENGTH) == "x" * MAX_LABEL_LENGTH
    with pytest.raises(ValidationError):
        label_clean("x" * (MAX_LABEL_LENGTH + 1))


def test_new_secret_applies_the_token_set_for_oauth2_and_the_fields_otherwise():
    tokens = TokenSet(access_token="at", secret={"access_token": "at", "extras": {"a": "b"}})

    assert NewSecret(tokens=tokens).plain == {"access_token": "at", "extras": {"a": "b"}}
    assert NewSecret(secret={"api_key": "k"}).plain == {"api_key": "k"}
    assert NewSecret().plain == {}
