"""Verification while the account changes under it: a provider's late answer never undoes a
disconnect, and an account that went away is skipped rather than crashing the job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from werkzeug import Response

from accounts.services.audit import Actor
from integrations.models import Credential, Event
from integrations.services.credentials import credential_revoke
from integrations.services.verification import VerifyKind, credential_verify
from tests import factories


@pytest.fixture
def end_user(transactional_db):
    # Transactional: the provider's handler changes the row from the server's own thread.
    tenant = factories.make_tenant(name="Acme")
    return factories.make_end_user(tenant=tenant, email="ada@example.com")


@pytest.fixture
def credential(end_user, httpserver):
    app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    return factories.make_credential(end_user=end_user, app=app, secret={"api_key": "k"})


def _answer_after(change, response: Response):
    def handler(request):
        change()
        connections.close_all()
        return response

    return handler


def test_a_credential_revoked_while_the_provider_answers_stays_revoked(credential, httpserver):
    ok = Response('{"email": "ada@example.com"}', content_type="application/json")
    revoke = lambda: credential_revoke(credential=credential, actor=Actor.system())  # noqa: E731
    httpserver.expect_request("/me").respond_with_handler(_answer_after(revoke, ok))

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.SKIPPED
    credential.refresh_from_db()
    assert (credential.status, credential.has_secret) == ("revoked", False)
    assert credential.next_verification_at is None
    assert list(Event.objects.values_list("type", flat=True)) == ["credential.revoked"]


@pytest.mark.parametrize(
    "answer",
    [
        Response('{"email": "ada@example.com"}', content_type="application/json"),
        Response(status=503),
    ],
    ids=["accepted", "provider-down"],
)
def test_a_credential_deleted_while_the_provider_answers_is_skipped(credential, httpserver, answer):
    delete = lambda: Credential.objects.filter(pk=credential.pk).delete()  # noqa: E731
    httpserver.expect_request("/me").respond_with_handler(_answer_after(delete, answer))

    outcome = credential_verify(credential_id=credential.pk)

    assert outcome.kind == VerifyKind.SKIPPED
    assert not Credential.objects.filter(pk=credential.pk).exists()


def test_checking_an_expired_oauth_credential_again_sends_nothing_and_keeps_it_expired(
    end_user, httpserver
):
    httpserver.expect_request("/api/me").respond_with_json({"error": "expired"}, status=401)
    app = factories.make_oauth_app(api_base_url=httpserver.url_for("/api"))
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "old"},
        status="expired",
        expires_at=timezone.now() - timedelta(hours=1),
        last_verification_error="The grant is gone.",
    )

    outcome = credential_verify(credential_id=credential.pk)

    assert (outcome.kind, outcome.reason) == (VerifyKind.REJECTED, "The grant is gone.")
    credential.refresh_from_db()
    assert credential.status == "expired"
    assert httpserver.log == []
    assert not Event.objects.exists()
