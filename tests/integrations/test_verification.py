"""Verification (``integrations.services.verification``) against a real local provider
(pytest-httpserver): the entry rule of ``credential_connect`` and ``credential_verify`` of an
existing credential."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Response

from accounts.models import AuditLogEntry
from accounts.services.audit import Actor
from core.vault import open_secret
from integrations.models import Credential, Event
from integrations.services.credentials import NewSecret
from integrations.services.oauth import TokenSet
from integrations.services.verification import (
    ConnectKind,
    ProbeKind,
    VerifyKind,
    credential_connect,
    credential_verify,
    verification_probe,
)
from tests import factories

pytestmark = pytest.mark.django_db

ADA_KEY = "ada-key-0000000000000001"
ADA_NEW_KEY = "ada-key-0000000000000002"
BOB_KEY = "bob-key-0000000000000003"
REFUSED_KEY = "bad-key-0000000000000004"


@pytest.fixture
def provider(httpserver):
    """A provider whose /me says which account each key belongs to, and refuses one key."""
    for key, email in ((ADA_KEY, "ada@example.com"), (ADA_NEW_KEY, "ada@example.com")):
        httpserver.expect_request("/me", headers={"X-API-Key": key}).respond_with_json(
            {"email": email}
        )
    httpserver.expect_request("/me", headers={"X-API-Key": BOB_KEY}).respond_with_json(
        {"email": "bob@example.com"}
    )
    httpserver.expect_request("/me", headers={"X-API-Key": REFUSED_KEY}).respond_with_json(
        {"message": "Bad credentials"}, status=401
    )
    return httpserver


@pytest.fixture
def app(provider):
    return factories.make_api_key_app(name="Keyed", api_base_url=provider.url_for("/"))


@pytest.fixture
def actor(end_user) -> Actor:
    return Actor.end_user(end_user.pk)


def connect(end_user, app, key: str, *, actor: Actor, **extra):
    return credential_connect(
        end_user=end_user, app=app, new=NewSecret(secret={"api_key": key}), actor=actor, **extra
    )


def event_types() -> list[str]:
    return list(Event.objects.order_by("created_at").values_list("type", flat=True))


def assert_nothing_stored() -> None:
    assert not Credential.objects.exists()
    assert not Event.objects.exists()
    assert not AuditLogEntry.objects.exists()


# credential_connect: the entry rule


def test_an_accepted_key_becomes_one_active_credential_with_the_providers_identity(
    end_user, app, actor
):
    connection = connect(end_user, app, ADA_KEY, actor=actor, label="Work")

    assert connection.kind == ConnectKind.CONNECTED
    assert connection.ok and not connection.already_existed
    credential = Credential.objects.get()
    assert connection.credential.pk == credential.pk
    assert (credential.status, credential.identity, credential.label) == (
        Credential.Status.ACTIVE,
        "ada@example.com",
        "Work",
    )
    assert open_secret(credential) == {"api_key": ADA_KEY}
    assert credential.secret_hint == "…0001"
    assert event_types() == ["credential.created", "credential.verified"]
    assert Event.objects.get(type="credential.created").data["credential_id"] == str(credential.pk)


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_the_provider_refuses_is_rejected_with_its_reason_and_nothing_is_stored(
    end_user, httpserver, actor, status
):
    httpserver.expect_request("/me").respond_with_json(
        {"error": {"message": "This key was revoked"}}, status=status
    )
    app = factories.make_api_key_app(name="Keyed", api_base_url=httpserver.url_for("/"))

    connection = connect(end_user, app, REFUSED_KEY, actor=actor)

    assert connection.kind == ConnectKind.REJECTED
    assert not connection.ok
    assert connection.credential is None
    assert connection.reason == "Keyed refused the credential: This key was revoked."
    assert_nothing_stored()


def test_a_200_that_says_the_key_is_refused_is_rejected_and_nothing_is_stored(
    end_user, httpserver, actor
):
    httpserver.expect_request("/me").respond_with_json({"ok": False, "error": "invalid_auth"})
    app = factories.make_api_key_app(
        name="Keyed",
        api_base_url=httpserver.url_for("/"),
        verification={
            "path": "/me",
            "identity": ["user"],
            "success": {"path": "ok", "equals": True},
        },
    )

    connection = connect(end_user, app, ADA_KEY, actor=actor)

    assert connection.kind == ConnectKind.REJECTED
    assert connection.reason == "Keyed refused the credential: invalid_auth."
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(503, {"Retry-After": "7"}, 7), (429, {"Retry-After": "30"}, 30), (500, {}, None)],
    ids=["503", "429", "500"],
)
def test_a_provider_that_does_not_answer_is_unavailable_with_its_retry_after_and_nothing_is_stored(
    end_user, httpserver, actor, status, headers, retry_after
):
    httpserver.expect_request("/me").respond_with_data("busy", status=status, headers=headers)
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))

    connection = connect(end_user, app, ADA_KEY, actor=actor)

    assert connection.kind == ConnectKind.UNAVAILABLE
    assert not connection.ok
    assert connection.retry_after == retry_after
    assert str(status) in connection.reason
    assert_nothing_stored()


def test_a_provider_that_times_out_is_unavailable_and_nothing_is_stored(
    end_user, httpserver, actor, settings
):
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return Response('{"email": "ada@example.com"}', content_type="application/json")

    httpserver.expect_request("/me").respond_with_handler(slow)
    app = factories.make_api_key_app(name="Keyed", api_base_url=httpserver.url_for("/"))

    connection = connect(end_user, app, ADA_KEY, actor=actor)

    assert connection.kind == ConnectKind.UNAVAILABLE
    assert connection.reason == "Keyed did not answer in time"
    assert connection.retry_after is None
    assert_nothing_stored()


def test_a_provider_that_cannot_be_reached_is_unavailable_and_nothing_is_stored(end_user, actor):
    app = factories.make_api_key_app(name="Keyed", api_base_url="http://127.0.0.1:1/")

    connection = connect(end_user, app, ADA_KEY, actor=actor)

    assert connection.kind == ConnectKind.UNAVAILABLE
    assert connection.reason.startswith("Keyed could not be reached")
    assert_nothing_stored()


def test_the_same_account_connected_twice_is_one_credential_updated_with_the_new_key(
    end_user, app, actor
):
    first = connect(end_user, app, ADA_KEY, actor=actor, label="Work")

    second = connect(end_user, app, ADA_NEW_KEY, actor=actor, label="Other name")

    assert second.kind == ConnectKind.ALREADY_CONNECTED
    assert second.ok and second.already_existed
    assert second.credential.pk == first.credential.pk
    credential = Credential.objects.get()
    assert open_secret(credential) == {"api_key": ADA_NEW_KEY}
    # The shipped bug: merging into the identity twin re-sealed without updating the hint.
    assert credential.secret_hint == "…0002"
    assert credential.label == "Work"
    assert event_types() == [
        "credential.created",
        "credential.verified",
        "credential.reconnected",
    ]
    assert Event.objects.filter(type="credential.created").count() == 1
    assert Event.objects.get(type="credential.reconnected").data["already_exists"] is True


def test_the_same_account_connected_again_brings_an_invalid_credential_back(end_user, app, actor):
    credential = connect(end_user, app, ADA_KEY, actor=actor).credential
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.INVALID)

    again = connect(end_user, app, ADA_NEW_KEY, actor=actor)

    assert again.kind == ConnectKind.ALREADY_CONNECTED
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE


def test_two_accounts_of_one_user_at_one_app_are_two_credentials(end_user, app, actor):
    ada = connect(end_user, app, ADA_KEY, actor=actor)
    bob = connect(end_user, app, BOB_KEY, actor=actor)

    assert (ada.kind, bob.kind) == (ConnectKind.CONNECTED, ConnectKind.CONNECTED)
    identities = set(Credential.objects.values_list("identity", flat=True))
    assert identities == {"ada@example.com", "bob@example.com"}
    assert Event.objects.filter(type="credential.created").count() == 2


def test_one_account_connected_by_two_users_is_a_credential_for_each(end_user, app, actor):
    other = factories.make_end_user(tenant=end_user.tenant)

    mine = connect(end_user, app, ADA_KEY, actor=actor)
    theirs = connect(other, app, ADA_NEW_KEY, actor=Actor.end_user(other.pk))

    assert (mine.kind, theirs.kind) == (ConnectKind.CONNECTED, ConnectKind.CONNECTED)
    assert mine.credential.pk != theirs.credential.pk
    assert open_secret(Credential.objects.get(pk=mine.credential.pk)) == {"api_key": ADA_KEY}


def test_an_oauth2_sign_in_is_verified_with_its_access_token_and_keeps_its_expiry(
    end_user, httpserver, actor
):
    httpserver.expect_request(
        "/api/me", headers={"Authorization": "Bearer at-1"}
    ).respond_with_json({"email": "ada@example.com"})
    app = factories.make_oauth_app(api_base_url=httpserver.url_for("/api"))
    expires_at = timezone.now() + timedelta(hours=1)
    tokens = TokenSet(
        access_token="at-1",
        refresh_token="rt-1",
        expires_at=expires_at,
        scopes=["profile"],
        secret={"access_token": "at-1", "refresh_token": "rt-1"},
    )

    connection = credential_connect(
        end_user=end_user, app=app, new=NewSecret(tokens=tokens), actor=actor
    )

    assert connection.kind == ConnectKind.CONNECTED
    credential = Credential.objects.get()
    assert credential.identity == "ada@example.com"
    assert (credential.expires_at, credential.scopes) == (expires_at, ["profile"])
    assert credential.refresh_at is not None


# credential_connect: reconnecting an existing credential


@pytest.fixture
def ada(end_user, app, actor) -> Credential:
    return connect(end_user, app, ADA_KEY, actor=actor, label="Work").credential


def test_a_reconnect_with_a_key_of_the_same_account_updates_the_credential_in_place(
    end_user, app, actor, ada
):
    Credential.objects.filter(pk=ada.pk).update(status=Credential.Status.INVALID)

    connection = connect(end_user, app, ADA_NEW_KEY, actor=actor, reconnect=ada)

    assert connection.kind == ConnectKind.RECONNECTED
    assert connection.credential.pk == ada.pk
    credential = Credential.objects.get()
    assert (credential.status, credential.label) == (Credential.Status.ACTIVE, "Work")
    assert open_secret(credential) == {"api_key": ADA_NEW_KEY}
    assert credential.secret_hint == "…0002"
    assert event_types()[2:] == ["credential.reconnected"]
    assert Event.objects.get(type="credential.reconnected").data["already_exists"] is False


def test_a_reconnect_with_a_key_of_another_account_is_an_identity_mismatch_and_changes_nothing(
    end_user, app, actor, ada
):
    before = Credential.objects.get(pk=ada.pk)
    events_before = event_types()
    audit_before = AuditLogEntry.objects.count()

    connection = connect(end_user, app, BOB_KEY, actor=actor, reconnect=ada)

    assert connection.kind == ConnectKind.IDENTITY_MISMATCH
    assert not connection.ok
    assert connection.identity == "bob@example.com"
    assert connection.credential.pk == ada.pk
    after = Credential.objects.get()
    assert open_secret(after) == {"api_key": ADA_KEY}
    assert (after.identity, after.secret_hint, after.status, after.updated_at) == (
        before.identity,
        before.secret_hint,
        before.status,
        before.updated_at,
    )
    assert event_types() == events_before
    assert AuditLogEntry.objects.count() == audit_before


def test_a_reconnect_of_an_unnamed_account_with_a_key_another_credential_holds_is_refused(
    end_user, app, actor, ada
):
    unnamed = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": BOB_KEY}, status="invalid"
    )

    connection = connect(end_user, app, ADA_NEW_KEY, actor=actor, reconnect=unnamed)

    assert connection.kind == ConnectKind.IDENTITY_MISMATCH
    unnamed.refresh_from_db()
    assert (unnamed.identity, unnamed.status) == ("", Credential.Status.INVALID)
    assert open_secret(unnamed) == {"api_key": BOB_KEY}
    assert open_secret(Credential.objects.get(pk=ada.pk)) == {"api_key": ADA_KEY}


def test_a_reconnect_with_a_refused_key_leaves_the_credential_as_it_was(end_user, app, actor, ada):
    events_before = event_types()

    connection = connect(end_user, app, REFUSED_KEY, actor=actor, reconnect=ada)

    assert connection.kind == ConnectKind.REJECTED
    assert connection.credential.pk == ada.pk
    assert connection.reason.endswith("Bad credentials.")
    credential = Credential.objects.get()
    assert credential.status == Credential.Status.ACTIVE
    assert open_secret(credential) == {"api_key": ADA_KEY}
    assert event_types() == events_before


# credential_verify: an existing credential


def test_verify_marks_a_credential_the_provider_accepts_active(end_user, app):
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": ADA_KEY}, status="invalid"
    )

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.VERIFIED and outcome.verified
    credential.refresh_from_db()
    assert (credential.status, credential.identity) == ("active", "ada@example.com")
    assert event_types() == ["credential.verified"]
    assert list(
        AuditLogEntry.objects.filter(credential=credential)
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["credential.use.verify", "credential.verify"]


def test_verify_marks_a_credential_the_provider_refuses_with_401_invalid_with_its_reason(
    end_user, app
):
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": REFUSED_KEY}
    )

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.REJECTED
    assert outcome.reason == "Keyed refused the credential: Bad credentials."
    credential.refresh_from_db()
    assert credential.status == Credential.Status.INVALID
    assert credential.last_verification_error == outcome.reason
    assert event_types() == ["credential.verification_failed"]


@pytest.mark.parametrize("status", ["active", "pending", "invalid"])
def test_verify_leaves_the_status_when_the_provider_answers_503(end_user, httpserver, status):
    httpserver.expect_request("/me").respond_with_data(
        "down", status=503, headers={"Retry-After": "12"}
    )
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    credential = factories.make_credential(end_user=end_user, app=app, status=status)

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.UNAVAILABLE
    assert outcome.retry_after == 12
    credential.refresh_from_db()
    assert credential.status == status
    assert credential.verification_attempts == 1
    assert not Event.objects.exists()


def test_verify_skips_a_revoked_credential_without_asking_the_provider(end_user, app, provider):
    credential = factories.make_credential(end_user=end_user, app=app, status="revoked")

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.SKIPPED
    assert not provider.log
    assert not Event.objects.exists()


def test_verify_skips_a_credential_that_is_gone(db):
    outcome = credential_verify(credential_id="00000000-0000-0000-0000-000000000000")

    assert (outcome.kind, outcome.credential) == (VerifyKind.SKIPPED, None)


# verification_probe


def test_the_probe_reads_the_identity_from_the_first_path_that_has_one(db, httpserver):
    httpserver.expect_request("/me").respond_with_json(
        {"email": "", "data": {"users": [{"login": "ada"}]}}
    )
    app = factories.make_api_key_app(
        api_base_url=httpserver.url_for("/"),
        verification={"path": "/me", "identity": ["email", "data.users.0.login"]},
    )

    result = verification_probe(app=app, secret={"api_key": "k"})

    assert (result.kind, result.identity) == (ProbeKind.VERIFIED, "ada")
    assert not Credential.objects.exists()


def test_the_probe_rejects_a_secret_missing_a_value_the_template_needs(db, provider):
    app = factories.make_api_key_app(api_base_url=provider.url_for("/"))

    result = verification_probe(app=app, secret={})

    assert result.kind == ProbeKind.REJECTED
    assert not provider.log
