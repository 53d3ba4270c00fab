"""Cheaper inbox-counter writes for large fan-outs.

The statement-level trigger of migration 0004 upserts one counter per
recipient: half of PostgreSQL's time in an in-app fan-out. Two changes make
each upsert cheaper:

- the counters' platform index goes (the unique (user, platform) key serves
  every read; deleting a platform or the admin's platform filter scan this
  narrow table instead), one index entry less per counter created;
- on PostgreSQL the table keeps half of each page free (fillfactor 50), so an
  update of a counter (an existing recipient's unread + 1) is a heap-only
  tuple on its own page, with no new entry in either index. Pages written
  before this migration get the free space as vacuum clears them.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "notifications_inboxcounter"


def counters_platform_index_drop(apps, schema_editor):
    # DROP INDEX by name rather than AlterField's database side: on SQLite
    # that remakes the table, and the renames of a remake fail on the
    # notification table's counter triggers, which name this table.
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == ["platform_id"]:
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def counters_platform_index_create(apps, schema_editor):
    name = schema_editor._create_index_name(TABLE, ["platform_id"])
    schema_editor.execute(
        f"CREATE INDEX {schema_editor.quote_name(name)} ON {schema_editor.quote_name(TABLE)} (platform_id)"
    )


def counters_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE notifications_inboxcounter SET (fillfactor = 50)")


def counters_fillfactor_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE notifications_inboxcounter RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0018_receipts_and_suppressions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="inboxcounter",
                    name="platform",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="notifications.platform",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(counters_platform_index_drop, counters_platform_index_create),
            ],
        ),
        migrations.RunPython(counters_fillfactor, counters_fillfactor_reset),
    ]
