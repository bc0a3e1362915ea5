"""The admin: tenant staff see only their tenant's rows, and no page ever shows a secret."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership, TenantApiKey
from accounts.services.tenants import tenant_api_key_authenticate, tenant_create
from core.vault import seal_secret
from integrations.models import Credential, TenantOAuthClient, WebhookEndpoint
from tests import factories

User = get_user_model()
SECRETS = {
    "api_key": "sk_live_ADMIN_SHOULD_NEVER_SHOW_1234",
    "access_token": "ACCESS_TOKEN_ADMIN_NEVER_SHOWS",
    "refresh_token": "REFRESH_TOKEN_ADMIN_NEVER_SHOWS",
    "client_secret": "CLIENT_SECRET_ADMIN_NEVER_SHOWS",
    "webhook": "whsec_WEBHOOK_ADMIN_NEVER_SHOWS",
}


def _staff(email, tenant, role=Membership.Role.ADMIN):
    user = User.objects.create_user(
        username=email, email=email, password="pw-123456789", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def world(db):
    acme, globex = tenant_create(name="Acme"), tenant_create(name="Globex")
    key_app, oauth_app = factories.make_api_key_app(), factories.make_oauth_app()
    objects = {}
    for tenant in (acme, globex):
        user = factories.make_end_user(tenant=tenant, email=f"someone@{tenant.slug}.test")
        flow = factories.make_flow(tenant=tenant, apps=[key_app, oauth_app])
        factories.make_deployment(tenant=tenant, flows=[flow])
        key_credential = factories.make_credential(
            end_user=user, app=key_app, secret={"api_key": SECRETS["api_key"]}
        )
        factories.make_credential(
            end_user=user,
            app=oauth_app,
            secret={
                "access_token": SECRETS["access_token"],
                "refresh_token": SECRETS["refresh_token"],
            },
        )
        client = TenantOAuthClient.objects.create(tenant=tenant, app=oauth_app, client_id="cid")
        seal_secret(client, {"client_secret": SECRETS["client_secret"]})
        client.save()
        endpoint = WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/")
        seal_secret(endpoint, {"secret": SECRETS["webhook"]})
        endpoint.save()
        objects[tenant.slug] = {
            "tenant": tenant,
            "end_user": user,
            "flow": flow,
            "credential": key_credential,
        }
    return acme, globex, objects


def test_tenant_staff_cannot_open_another_tenants_credential_flow_or_end_user(client, world):
    acme, globex, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    theirs = objects[globex.slug]
    for name, obj in (
        ("credential", theirs["credential"]),
        ("flow", theirs["flow"]),
        ("enduser", theirs["end_user"]),
    ):
        app_label = obj._meta.app_label
        response = client.get(reverse(f"admin:{app_label}_{name}_change", args=[obj.pk]))
        assert response.status_code == 404, name
        assert (
            client.get(reverse(f"admin:{app_label}_{name}_history", args=[obj.pk])).status_code
            == 404
        )
        assert (
            client.get(reverse(f"admin:{app_label}_{name}_delete", args=[obj.pk])).status_code
            == 404
        )
    ours = objects[acme.slug]
    assert (
        client.get(
            reverse("admin:integrations_credential_change", args=[ours["credential"].pk])
        ).status_code
        == 200
    )


def test_tenant_staff_lists_only_their_tenants_rows(client, world):
    acme, globex, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    page = client.get(reverse("admin:accounts_enduser_changelist")).content.decode()
    assert objects[acme.slug]["end_user"].email in page
    assert objects[globex.slug]["end_user"].email not in page
    page = client.get(reverse("admin:accounts_tenant_changelist")).content.decode()
    assert "Acme" in page and "Globex" not in page


def test_tenant_staff_choices_offer_only_their_tenants_objects(client, world):
    acme, globex, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    page = client.get(reverse("admin:integrations_deployment_add")).content.decode()
    assert str(objects[acme.slug]["flow"].pk) in page
    assert str(objects[globex.slug]["flow"].pk) not in page


def test_a_viewer_can_read_but_not_change(client, world):
    acme, _, objects = world
    client.force_login(_staff("viewer@acme.test", acme, role=Membership.Role.VIEWER))
    flow = objects[acme.slug]["flow"]
    url = reverse("admin:integrations_flow_change", args=[flow.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "Renamed", "tenant": acme.pk, "status": "draft"})
    assert response.status_code == 403
    flow.refresh_from_db()
    assert flow.name != "Renamed"


def test_staff_without_a_membership_sees_nothing(client, world):
    user = User.objects.create_user(
        username="loner", email="loner@x.test", password="pw-123456789", is_staff=True
    )
    client.force_login(user)
    assert client.get(reverse("admin:integrations_credential_changelist")).status_code == 403


def test_no_admin_page_contains_a_secret(client, world):
    acme, _, _ = world
    superuser = User.objects.create_superuser(
        username="root", email="root@x.test", password="pw-123456789"
    )
    staff = _staff("staff@acme.test", acme)
    from django.contrib import admin

    pages_seen = 0
    for user in (superuser, staff):
        client.force_login(user)
        for model, model_admin in admin.site._registry.items():
            opts = model._meta
            changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            response = client.get(changelist)
            if response.status_code != 200:
                continue
            pages = [response]
            for obj in model_admin.get_queryset(response.wsgi_request)[:5]:
                pages.append(
                    client.get(
                        reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
                    )
                )
            for page in pages:
                pages_seen += 1
                text = page.content.decode()
                for name, secret in SECRETS.items():
                    assert secret not in text, f"{name} shown on {page.wsgi_request.path}"
    assert pages_seen > 40


def test_credential_page_shows_only_a_masked_description_of_the_secret(client, world):
    acme, _, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    credential = objects[acme.slug]["credential"]
    page = client.get(
        reverse("admin:integrations_credential_change", args=[credential.pk])
    ).content.decode()
    assert f"Encrypted with key {credential.secret_key_id}" in page
    assert "never shown" in page


def test_creating_an_api_key_shows_it_once_and_stores_only_its_hash(client, world):
    acme, _, _ = world
    client.force_login(_staff("staff@acme.test", acme))
    response = client.post(
        reverse("admin:accounts_tenantapikey_add"), {"tenant": acme.pk, "name": "server"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plaintext = response.context["secret"]
    assert plaintext.startswith("cp_sk_")
    key = TenantApiKey.objects.get(tenant=acme, name="server")
    assert plaintext not in (key.key_hash, key.prefix)
    assert tenant_api_key_authenticate(plaintext=plaintext) == key
    listing = client.get(reverse("admin:accounts_tenantapikey_changelist")).content.decode()
    assert plaintext not in listing


def test_revoke_action_destroys_the_secret_and_reports(client, world):
    acme, _, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    credential = objects[acme.slug]["credential"]
    response = client.post(
        reverse("admin:integrations_credential_changelist"),
        {"action": "revoke", "_selected_action": [credential.pk]},
        follow=True,
    )
    assert "Revoked 1 credential." in response.content.decode()
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert not credential.has_secret


def test_staff_cannot_revoke_another_tenants_credential_through_the_action(client, world):
    acme, globex, objects = world
    client.force_login(_staff("staff@acme.test", acme))
    theirs = objects[globex.slug]["credential"]
    client.post(
        reverse("admin:integrations_credential_changelist"),
        {"action": "revoke", "_selected_action": [theirs.pk]},
    )
    theirs.refresh_from_db()
    assert theirs.status == Credential.Status.ACTIVE


def test_verify_now_action_marks_a_credential_active_against_a_real_provider(
    client, world, httpserver
):
    acme, _, objects = world
    httpserver.expect_request("/me", headers={"X-API-Key": SECRETS["api_key"]}).respond_with_json(
        {"email": "owner@provider.test"}
    )
    credential = objects[acme.slug]["credential"]
    credential.app.api_base_url = httpserver.url_for("/")
    credential.app.save()
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.PENDING)
    client.force_login(_staff("staff@acme.test", acme))
    response = client.post(
        reverse("admin:integrations_credential_changelist"),
        {"action": "verify_now", "_selected_action": [credential.pk]},
        follow=True,
    )
    assert "1 verified" in response.content.decode()
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE
    assert credential.identity == "owner@provider.test"


def test_the_admin_sends_anonymous_visitors_to_the_allauth_login(client, db):
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("account_login"))
    assert b'name="password"' in response.content


def test_staff_sign_in_with_email_and_password_reaches_the_admin(client, world):
    acme, _, _ = world
    _staff("staff@acme.test", acme)
    response = client.post(
        reverse("account_login"), {"login": "staff@acme.test", "password": "pw-123456789"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_repeated_failed_logins_are_rate_limited_even_with_the_right_password(client, world):
    acme, _, _ = world
    _staff("staff@acme.test", acme)
    url = reverse("account_login")
    for _ in range(5):
        client.post(url, {"login": "staff@acme.test", "password": "wrong"})
    response = client.post(url, {"login": "staff@acme.test", "password": "pw-123456789"})
    assert b"Too many failed login attempts" in response.content
    assert client.get("/admin/").status_code == 302


def test_public_sign_up_is_closed(client, db):
    response = client.get(reverse("account_signup"))
    assert b"Sign Up Closed" in response.content or response.status_code in (302, 403)
