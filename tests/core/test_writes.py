"""core.writes: statements built once write the rows the ORM would write."""

from __future__ import annotations

import pytest
from django.db import DatabaseError
from django.db.models.signals import post_save

from accounts.models import AuditLogEntry
from core.writes import row_update, rows_insert
from integrations.models import Credential
from tests import factories

pytestmark = pytest.mark.django_db

COMPARED = ("tenant_id", "actor_type", "actor", "action", "outcome", "credential_id", "target")


def _entry(tenant, action: str) -> AuditLogEntry:
    return AuditLogEntry(
        tenant=tenant, actor_type="system", actor="", action=action, detail={"a": [1, "b"]}
    )


def test_rows_insert_writes_what_bulk_create_writes(tenant):
    rows_insert([_entry(tenant, "one"), _entry(tenant, "two")])
    AuditLogEntry.objects.bulk_create([_entry(tenant, "three")])

    written = {entry.action: entry for entry in AuditLogEntry.objects.filter(tenant=tenant)}
    for action in ("one", "two"):
        mine, orm = written[action], written["three"]
        assert [getattr(mine, name) for name in COMPARED if name != "action"] == [
            getattr(orm, name) for name in COMPARED if name != "action"
        ]
        assert mine.detail == {"a": [1, "b"]} and mine.created_at is not None
        assert mine.outcome == "success"  # the field's default


def test_row_update_writes_the_named_fields_and_sets_auto_now_ones(end_user):
    credential = factories.make_credential(end_user=end_user, app=factories.make_api_key_app())
    before = Credential.objects.get(pk=credential.pk)
    credential.identity = "new@provider.test"
    credential.label = "not named: not written"

    row_update(credential, ["identity", "updated_at"])

    after = Credential.objects.get(pk=credential.pk)
    assert after.identity == "new@provider.test"
    assert after.label == before.label
    assert after.updated_at > before.updated_at


def test_row_update_of_a_row_that_is_gone_raises(end_user):
    credential = factories.make_credential(end_user=end_user, app=factories.make_api_key_app())
    Credential.objects.filter(pk=credential.pk).delete()

    with pytest.raises(DatabaseError):
        row_update(credential, ["identity"])


def test_a_model_with_save_receivers_is_written_by_the_orm_which_sends_them(tenant):
    received = []

    def receiver(sender, instance, **kwargs):
        received.append(instance.action)

    post_save.connect(receiver, sender=AuditLogEntry, weak=False)
    try:
        rows_insert([_entry(tenant, "one")])  # bulk_create: no signal either
        entry = AuditLogEntry.objects.get(tenant=tenant, action="one")
        entry.action = "renamed"
        row_update(entry, ["action"])
    finally:
        post_save.disconnect(receiver, sender=AuditLogEntry)

    assert received == ["renamed"]
    assert AuditLogEntry.objects.filter(tenant=tenant, action="renamed").exists()
