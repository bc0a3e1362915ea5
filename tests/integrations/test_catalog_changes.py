"""The catalog loader moves every tenant's catalog version once, however many apps it saves."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant
from integrations.models import App
from integrations.services.catalog import catalog_load

pytestmark = pytest.mark.django_db


def test_a_catalog_load_moves_every_tenants_version_in_one_update(tenant, other_tenant):
    App.objects.filter(tenant__isnull=True).delete()
    before = dict(Tenant.objects.values_list("pk", "catalog_version"))

    with CaptureQueriesContext(connection) as captured:
        result = catalog_load()

    assert len(result.created) > 5
    updates = [q["sql"] for q in captured if q["sql"].startswith('UPDATE "accounts_tenant"')]
    assert len(updates) == 1
    after = dict(Tenant.objects.values_list("pk", "catalog_version"))
    assert all(after[pk] != version for pk, version in before.items())
