"""Hand-off links in the admin: listed with their recipient, opened how and when (never the
token), and revoked by the tenant's staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership
from integrations.models import ConnectSession
from integrations.services.connect_sessions import (
    Handoff,
    connect_session_create,
    connect_session_record_open,
)

pytestmark = pytest.mark.django_db

SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def staff(client, tenant):
    user = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(user)
    return client


@pytest.fixture
def link(tenant, end_user):
    return connect_session_create(
        tenant=tenant,
        end_user=end_user,
        lifetime=timedelta(days=2),
        handoff=Handoff(recipient_name="Grace from IT", single_use=True),
    )


def test_the_admin_lists_handoff_links_with_their_recipient(staff, link):
    response = staff.get(
        reverse("admin:integrations_connectsession_changelist"), {"source__exact": "handoff"}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "Grace from IT" in body
    assert link.token not in body


def test_a_handoff_links_page_shows_who_opened_it_and_when_but_not_the_token(staff, link):
    connect_session_record_open(session=link.session, user_agent=SAFARI)

    response = staff.get(
        reverse("admin:integrations_connectsession_change", args=[link.session.pk])
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Safari on iOS" in body
    assert link.token not in body and link.session.token_hash not in body


def test_staff_revoke_a_handoff_link(staff, link):
    staff.post(
        reverse("admin:integrations_connectsession_changelist"),
        {"action": "revoke", "_selected_action": [str(link.session.pk)]},
    )

    assert ConnectSession.objects.get(pk=link.session.pk).revoked_at is not None
