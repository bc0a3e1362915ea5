"""The sandbox in the admin: superusers only, and an API key's hash never appears."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from sandbox.services import sandbox_api_key_create, sandbox_seed

pytestmark = pytest.mark.django_db


def _user(*, superuser: bool):
    return get_user_model().objects.create_user(
        username="staff", password="x", is_staff=True, is_superuser=superuser
    )


def test_superuser_sees_an_api_key_without_its_hash(client):
    api_key, key = sandbox_api_key_create(account=sandbox_seed()[0], name="portal")
    client.force_login(_user(superuser=True))

    change = client.get(f"/admin/sandbox/sandboxapikey/{api_key.pk}/change/")
    listing = client.get("/admin/sandbox/sandboxapikey/")

    assert change.status_code == 200
    assert listing.status_code == 200
    for page in (change.content.decode(), listing.content.decode()):
        assert api_key.prefix in page
        assert api_key.key_hash not in page
        assert key not in page


def test_staff_who_are_not_superusers_cannot_see_the_sandbox(client):
    sandbox_seed()
    client.force_login(_user(superuser=False))

    index = client.get("/admin/")
    accounts = client.get("/admin/sandbox/sandboxaccount/")

    assert "Sandbox provider" not in index.content.decode()
    assert accounts.status_code == 403
