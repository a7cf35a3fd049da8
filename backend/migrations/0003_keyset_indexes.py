"""Issue 13: an index per way to page the hires, and a trigram index for name filters.

The composite indexes replace the single-column ones (datetime, and the two foreign keys):
each still serves what they served, as its first column. The new ones are built before the
old ones are dropped. On PostgreSQL, ``pg_trgm`` (a trusted extension: the database's owner
may create it, as on RDS) gives a GIN index on ``UPPER(name)``, the expression Django's
case-insensitive ``LIKE`` compares, so ``contains`` and ``startsWith`` need no full scan.
SQLite has no such index: its name filters scan the table.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TRIGRAM_INDEX = "hires_name_trigrams"


def create_trigram_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            f"CREATE INDEX {TRIGRAM_INDEX} ON hired_employees USING gin (UPPER(name) gin_trgm_ops)"
        )


def drop_trigram_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("backend", "0002_rejection_status"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="hiredemployee",
            index=models.Index(fields=["department", "id"], name="hires_by_department"),
        ),
        migrations.AddIndex(
            model_name="hiredemployee",
            index=models.Index(fields=["job", "id"], name="hires_by_job"),
        ),
        migrations.AddIndex(
            model_name="hiredemployee",
            index=models.Index(fields=["datetime", "id"], name="hires_by_datetime"),
        ),
        migrations.AddIndex(
            model_name="hiredemployee",
            index=models.Index(fields=["name", "id"], name="hires_by_name"),
        ),
        migrations.AlterField(
            model_name="hiredemployee",
            name="datetime",
            field=models.DateTimeField(help_text="Hire date and time, ISO 8601, stored in UTC."),
        ),
        migrations.AlterField(
            model_name="hiredemployee",
            name="department",
            field=models.ForeignKey(
                db_column="department_id",
                db_index=False,
                help_text="The department hired into.",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="hired_employees",
                to="backend.department",
            ),
        ),
        migrations.AlterField(
            model_name="hiredemployee",
            name="job",
            field=models.ForeignKey(
                db_column="job_id",
                db_index=False,
                help_text="The job hired for.",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="hired_employees",
                to="backend.job",
            ),
        ),
        migrations.RunPython(create_trigram_index, drop_trigram_index),
    ]
