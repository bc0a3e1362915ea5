"""The sweeps lease credentials in columns of their own, which no index reads.

Claiming a batch used to lease each row by moving its due time (an indexed column), so each of
the 500 rows got a new version in every index of the table. A lease column in no index lets
PostgreSQL rewrite the row in place on its page (a HOT update) when the page has room, so the
table now keeps 10% of each page free (fillfactor 90).

Safe on a big table: adding a nullable column without a default only changes the catalog, and
``ALTER TABLE … SET (fillfactor)`` takes a lock that lets reads and writes go on and rewrites
nothing. Pages written from now on keep the room; existing full pages get it as their rows'
old versions are pruned (after the first update of each page).
"""

from django.db import migrations, models


def keep_room_on_pages(apps, schema_editor):
    # SQLite has no such setting (and no HOT updates to make room for).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE integrations_credential SET (fillfactor = 90)")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE integrations_credential RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0010_event_tenant_user_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="credential",
            name="refresh_leased_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="credential",
            name="verification_leased_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(keep_room_on_pages, fill_pages, elidable=False),
    ]
