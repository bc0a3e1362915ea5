"""The proxy's one-query read (``proxy_key_and_credential``, hand-written SQL) and the ORM rule
it stands for (``credential_get_for_app``) find the same credential in every case of tenant
scoping: the same account, or none. A rule added to one and not the other fails here."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from accounts.services.tenants import tenant_api_key_create
from integrations.models import App
from integrations.selectors import credential_get_for_app
from integrations.services.proxy import proxy_key_and_credential
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tenant, other_tenant, end_user):
    catalog = factories.make_api_key_app(slug="crm")
    shadowed = factories.make_api_key_app(slug="mail")
    own_mail = factories.make_api_key_app(slug="mail", tenant=tenant)
    disabled = factories.make_api_key_app(slug="old")
    theirs_app = factories.make_api_key_app(slug="files", tenant=other_tenant)
    ours_app = factories.make_api_key_app(slug="files", tenant=tenant)
    stranger = factories.make_end_user(tenant=other_tenant)
    accounts = {
        "catalog app": (factories.make_credential(end_user=end_user, app=catalog), "crm"),
        "wrong slug": (factories.make_credential(end_user=end_user, app=catalog), "mail"),
        "shadowed catalog app": (
            factories.make_credential(end_user=end_user, app=shadowed),
            "mail",
        ),
        "tenant's own app": (factories.make_credential(end_user=end_user, app=own_mail), "mail"),
        "disabled app": (factories.make_credential(end_user=end_user, app=disabled), "old"),
        "another tenant's credential": (
            factories.make_credential(end_user=stranger, app=catalog),
            "crm",
        ),
        "another tenant's app": (
            factories.make_credential(end_user=stranger, app=theirs_app),
            "files",
        ),
        "same slug, our app": (factories.make_credential(end_user=end_user, app=ours_app), "files"),
        "inactive account": (
            factories.make_credential(end_user=end_user, app=catalog, status="revoked"),
            "crm",
        ),
    }
    App.objects.filter(pk=disabled.pk).update(is_enabled=False)
    return accounts


def _fast(prefix, credential_id, slug):
    _, credential = proxy_key_and_credential(
        prefix=prefix, credential_id=credential_id, app_slug=slug
    )
    return credential.pk if credential else None


def test_the_one_query_read_finds_what_the_orm_rule_finds(tenant, world):
    prefix = tenant_api_key_create(tenant=tenant, name="Backend").api_key.prefix
    cases = {name: (str(credential.pk), slug) for name, (credential, slug) in world.items()}
    cases["unknown id"] = (str(uuid.uuid4()), "crm")
    cases["not an id"] = ("not-a-uuid", "crm")

    found_any = False
    for name, (credential_id, slug) in cases.items():
        orm = credential_get_for_app(tenant=tenant, app_slug=slug, credential_id=credential_id)
        expected = orm.pk if orm else None
        assert _fast(prefix, credential_id, slug) == expected, name
        found_any = found_any or expected is not None
    assert found_any  # the matrix has accounts the rule finds, not only refusals
    for name in ("catalog app", "tenant's own app", "same slug, our app"):
        assert _fast(prefix, *cases[name]) is not None, name


def test_a_revoked_key_finds_nothing(tenant, world):
    issued = tenant_api_key_create(tenant=tenant, name="Old")
    issued.api_key.revoked_at = timezone.now()
    issued.api_key.save()
    credential, slug = world["catalog app"]

    api_key, found = proxy_key_and_credential(
        prefix=issued.api_key.prefix, credential_id=str(credential.pk), app_slug=slug
    )

    assert api_key is None and found is None


def test_another_tenants_key_does_not_find_this_tenants_accounts(other_tenant, world):
    prefix = tenant_api_key_create(tenant=other_tenant, name="Theirs").api_key.prefix
    for name in ("catalog app", "tenant's own app", "same slug, our app"):
        credential, slug = world[name]
        assert _fast(prefix, str(credential.pk), slug) is None, name
