"""The support view: an end user's admin page answers "what happened to their accounts?".

The records come from the real services (the OAuth2 exchange, verification and refresh against
a local provider), as the callback and the jobs write them, not from hand-made rows.
"""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_create
from integrations.models import Credential, Event, WebhookEndpoint
from integrations.selectors import end_user_timeline
from integrations.services.credentials import NewSecret, credential_rename
from integrations.services.oauth import oauth_client_for, oauth_exchange_code
from integrations.services.oauth_clients import oauth_client_set
from integrations.services.refresh import credential_refresh
from integrations.services.secrets import Purpose, credential_secret_open
from integrations.services.verification import credential_connect, credential_verify
from integrations.services.webhooks import webhook_endpoint_secret_rotate
from tests import factories

pytestmark = pytest.mark.django_db

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
FIRST_TOKEN, SECOND_TOKEN = "at_FIRST_0123456789abcdef", "at_SECOND_0123456789abcdef"
FIRST_REFRESH, SECOND_REFRESH = "rt_FIRST_0123456789abcdef", "rt_SECOND_0123456789abcdef"
SECRETS = (FIRST_TOKEN, SECOND_TOKEN, FIRST_REFRESH, SECOND_REFRESH, "client-secret-xyz")


def _staff(tenant, email="grace@acme.test", first_name="Grace", last_name="Hopper"):
    user = get_user_model().objects.create_user(
        username=email,
        email=email,
        password="pw",
        is_staff=True,
        first_name=first_name,
        last_name=last_name,
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def ada(tenant):
    return factories.make_end_user(
        tenant=tenant, external_id="crm-42", name="Ada Lovelace", email="ada@example.com"
    )


@pytest.fixture
def hubspot(tenant, httpserver):
    """An OAuth2 app whose provider is a local server: it hands out a token, accepts it at
    /api/me, refreshes it once, and then says the grant is gone."""
    app = factories.make_oauth_app(
        slug="hubspot",
        name="HubSpot",
        token_url=httpserver.url_for("/token"),
        api_base_url=httpserver.url_for("/api"),
    )
    oauth_client_set(tenant=tenant, app=app, client_id="cid", client_secret="client-secret-xyz")
    httpserver.expect_oneshot_request("/token", method="POST", data=None).respond_with_json(
        {
            "access_token": FIRST_TOKEN,
            "refresh_token": FIRST_REFRESH,
            "expires_in": 3600,
            "token_type": "Bearer",
        }
    )
    httpserver.expect_request("/api/me").respond_with_json({"email": "ada@hubspot.test"})
    return app


def _connect_verify_refresh_expire(tenant, ada, hubspot, httpserver, staff):
    """Ada connects HubSpot in the modal; staff verify it; the job refreshes it; the next
    refresh finds the grant revoked at the provider, and the credential expires."""
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.acme.test/portal")
    webhook_endpoint_secret_rotate(endpoint=WebhookEndpoint.objects.get(tenant=tenant))
    tokens = oauth_exchange_code(
        client=oauth_client_for(tenant=tenant, app=hubspot),
        code="code-1",
        redirect_uri="https://portal.test/callback",
        code_verifier=None,
    )
    connection_ = credential_connect(
        end_user=ada,
        app=hubspot,
        new=NewSecret(tokens=tokens),
        actor=Actor.end_user(ada.pk),
        label="Sales pipeline",
    )
    assert connection_.ok
    credential = connection_.credential
    assert credential_verify(credential_id=credential.pk, actor=Actor.staff(staff)).kind == (
        "verified"
    )
    httpserver.expect_oneshot_request("/token", method="POST").respond_with_json(
        {
            "access_token": SECOND_TOKEN,
            "refresh_token": SECOND_REFRESH,
            "expires_in": 3600,
            "token_type": "Bearer",
        }
    )
    assert credential_refresh(credential_id=credential.pk, force=True).kind == "refreshed"
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"error": "invalid_grant", "error_description": "Token revoked"}, status=400
    )
    Credential.objects.filter(pk=credential.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.EXPIRED
    return credential


def _timeline_html(page: str) -> str:
    return page[page.index('<section id="timeline"') : page.index("</section>")]


def _visible(html: str) -> str:
    """The text a person reads: no tags, so no link targets."""
    return html_module.unescape(re.sub(r"<[^>]+>", " ", html))


def test_as_tenant_staff_the_end_users_page_shows_connected_verified_refreshed_and_expired(
    client, tenant, ada, hubspot, httpserver
):
    staff = _staff(tenant)
    credential = _connect_verify_refresh_expire(tenant, ada, hubspot, httpserver, staff)
    client.force_login(staff)

    response = client.get(reverse("admin:accounts_enduser_change", args=[ada.pk]))

    assert response.status_code == 200
    timeline = _timeline_html(response.content.decode())
    text = " ".join(_visible(timeline).split())
    changes = [
        " ".join(_visible(row).split())
        for row in re.findall(
            r'<tr class="support-entry support-entry-change[^"]*">(.*?)</tr>', timeline, re.S
        )
    ]
    # Newest first: the job's refresh refused (invalid_grant) and the credential expired, the
    # job's refresh before, staff's verification, and Ada's connection.
    assert [
        _first_of(row, ("Expired", "refresh failed", "Token refreshed", "Verified", "Connected"))
        for row in changes
    ] == [
        "Expired",
        "refresh failed",
        "Token refreshed",
        "Verified",
        "Connected",
    ], changes
    assert all("System (background job)" in row for row in changes[:3])
    assert "Grace Hopper <grace@acme.test>" in changes[3]
    assert "Ada Lovelace (crm-42)" in changes[4]
    assert all("HubSpot · Sales pipeline" in row for row in changes)
    assert "HubSpot · Sales pipeline" in text
    assert "Ada Lovelace (crm-42)" in text
    assert "Grace Hopper <grace@acme.test>" in text
    assert "System (background job)" in text
    assert "Event credential.expired sent to the tenant" in text
    assert "https://hooks.acme.test/portal: Pending" in text
    assert reverse("admin:integrations_credential_change", args=[credential.pk]) in timeline
    assert not UUID.search(text), UUID.search(text)
    for secret in SECRETS:
        assert secret not in response.content.decode()


def _first_of(row: str, words: tuple[str, ...]) -> str:
    return next((word for word in words if word in row), row)


def test_another_tenants_staff_get_a_404_for_the_end_user(client, tenant, other_tenant, ada):
    client.force_login(_staff(other_tenant, email="eve@globex.test"))

    response = client.get(reverse("admin:accounts_enduser_change", args=[ada.pk]))

    assert response.status_code == 404


def test_the_timeline_holds_only_the_end_users_tenants_rows(tenant, other_tenant, ada):
    """Another tenant's end user with the same external id: its events name the same user_id."""
    namesake = factories.make_end_user(tenant=other_tenant, external_id="crm-42", name="Eve")
    app = factories.make_api_key_app(name="Notion")
    theirs = factories.make_credential(end_user=namesake, app=app)
    credential_rename(credential=theirs, label="Eve's", actor=Actor.end_user(namesake.pk))
    mine = factories.make_credential(end_user=ada, app=app)
    credential_rename(credential=mine, label="Ada's", actor=Actor.end_user(ada.pk))

    timeline = end_user_timeline(end_user=ada)

    assert {entry.credential_name for entry in timeline.entries} == {"Ada's"}
    assert [c.pk for c in timeline.credentials] == [mine.pk]


def test_the_timeline_reads_in_a_fixed_number_of_queries_and_is_capped(tenant, ada):
    app = factories.make_api_key_app(name="Notion")

    def renames(n):
        for i in range(n):
            credential = factories.make_credential(end_user=ada, app=app)
            credential_rename(credential=credential, label=f"Account {i}", actor=Actor.system())

    renames(2)
    with CaptureQueriesContext(connection) as few:
        small = end_user_timeline(end_user=ada, limit=10)
    renames(20)
    with CaptureQueriesContext(connection) as many:
        large = end_user_timeline(end_user=ada, limit=10)

    assert len(many) == len(few)
    assert len(small.entries) == 4 and not small.has_more
    assert len(large.entries) == 10 and large.has_more
    assert [e.at for e in large.entries] == sorted((e.at for e in large.entries), reverse=True)


def test_show_more_and_one_account_only_follow_the_links(client, tenant, ada):
    app = factories.make_api_key_app(name="Notion")
    credentials = [factories.make_credential(end_user=ada, app=app) for _ in range(30)]
    for i, credential in enumerate(credentials):
        credential_rename(credential=credential, label=f"Account {i}", actor=Actor.system())
    client.force_login(_staff(tenant))
    url = reverse("admin:accounts_enduser_change", args=[ada.pk])

    first = client.get(url).content.decode()
    more = client.get(url + "?timeline=100").content.decode()
    one = client.get(url + f"?credential={credentials[3].pk}").content.decode()

    assert first.count('class="support-entry ') == 50
    assert "Show more" in first
    assert more.count('class="support-entry ') == 60
    assert "Show more" not in more
    assert one.count('class="support-entry ') == 2
    assert "Showing Notion · Account 3 only." in one


def test_secret_uses_are_listed_only_on_request_and_name_the_api_key(tenant, ada):
    key = tenant_api_key_create(tenant=tenant, name="Backend").api_key
    credential = factories.make_credential(
        end_user=ada, app=factories.make_api_key_app(name="Notion")
    )
    credential_secret_open(
        credential=credential, actor=Actor.api_key(key.prefix), purpose=Purpose.PROXY
    )

    assert end_user_timeline(end_user=ada).entries == []
    (use,) = end_user_timeline(end_user=ada, secret_uses=True).entries
    assert use.what == "Secret used for proxy"
    assert use.actor == f"API key “Backend” ({key.prefix}…)"


@pytest.mark.postgres  # PostgreSQL's planner and its expression index
def test_the_timeline_finds_the_end_users_events_through_an_index(tenant, ada):
    for n in range(30):
        Event.objects.create(tenant=tenant, type="credential.verified", data={"user_id": f"u{n}"})
    events = Event.objects.filter(tenant_id=tenant.pk, data__user_id=ada.external_id)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = events.order_by("-created_at")[:50].explain()

    assert "event_tenant_user" in plan, plan
