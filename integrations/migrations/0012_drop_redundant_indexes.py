"""Drop three indexes that no query needs and every new row version pays for.

- ``credential.tenant_id``: ``credential_owner`` (tenant, end user, app) and
  ``credential_tenant_status`` (tenant, status) both lead with the tenant, so they serve the
  tenant's lookups and the cascade when a tenant is deleted.
- ``credential.secret_key_id`` (and, on PostgreSQL, its ``varchar_pattern_ops`` twin for
  LIKE): nothing filters credentials by key id but key rotation's ``<>`` and its count by key,
  which read the whole table anyway (rotation walks it by primary key).
- ``webhookdelivery.event_id``: ``delivery_once_per_endpoint`` (event, endpoint) leads with it.

On PostgreSQL each index is dropped with ``DROP INDEX CONCURRENTLY`` (hence ``atomic = False``):
a plain ``DROP INDEX`` is quick but needs an exclusive lock on the table, which waits behind any
long query and holds up every query queued behind it. SQLite drops them plainly. Going back
builds them again ``CONCURRENTLY``, without blocking writes, however big the table.
"""

import django.db.models.deletion
from django.db import migrations, models

# Django's names for these indexes (the same on PostgreSQL and SQLite; ``_like`` is
# PostgreSQL's alone).
INDEXES = {
    "integrations_credential_tenant_id_add70123": ("integrations_credential", "tenant_id", ""),
    "integrations_credential_secret_key_id_b9998be2": (
        "integrations_credential",
        "secret_key_id",
        "",
    ),
    "integrations_credential_secret_key_id_b9998be2_like": (
        "integrations_credential",
        "secret_key_id",
        " varchar_pattern_ops",
    ),
    "integrations_webhookdelivery_event_id_233f606b": (
        "integrations_webhookdelivery",
        "event_id",
        "",
    ),
}


def _concurrently(schema_editor) -> str:
    return "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX {_concurrently(schema_editor)}IF EXISTS "{name}"')


def create_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, (table, column, opclass) in INDEXES.items():
        if opclass and not postgres:
            continue
        schema_editor.execute(
            f'CREATE INDEX {_concurrently(schema_editor)}IF NOT EXISTS "{name}" '
            f'ON "{table}" ("{column}"{opclass})'
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0004_tenant_catalog_version"),
        ("integrations", "0011_credential_sweep_leases"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="credential",
                    name="secret_key_id",
                    field=models.CharField(blank=True, editable=False, max_length=32),
                ),
                migrations.AlterField(
                    model_name="credential",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="credentials",
                        to="accounts.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="integrations.event",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
