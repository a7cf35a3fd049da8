"""Issue 14: the hires summary with a row per year, department and job and a column per
quarter, in place of a row per quarter: a chunk of a load touches two thirds of the rows it
did, and ``hiresByQuarter`` sums a quarter of them (``backend/hire_summary.py``). Its
``hires`` is the quarters' sum, computed by the database, so every reader of the summary sums
the same column in each of its tables. The table is made again and filled from the rows by
``install``.

Going back leaves 0006's tables empty and without triggers, as 0006 alone makes them; coming
forward again fills the summary from the rows.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from backend import hire_summary


def install(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    hire_summary.install(schema_editor.connection)


def uninstall(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    hire_summary.uninstall(schema_editor.connection)


def _quarter(n: int) -> models.BigIntegerField:
    return models.BigIntegerField(default=0, help_text=f'Hires in Q{n}, in UTC.')


class Migration(migrations.Migration):

    dependencies = [
        ('backend', '0006_hire_stripes'),
    ]

    operations = [
        migrations.RunPython(uninstall, migrations.RunPython.noop),
        migrations.DeleteModel(name='HireCount'),
        migrations.CreateModel(
            name='HireCount',
            fields=[
                ('pk', models.CompositePrimaryKey('year', 'department', 'job', 'stripe', blank=True, editable=False, primary_key=True, serialize=False)),
                ('year', models.IntegerField(help_text="The hire's year, in UTC.")),
                ('stripe', models.SmallIntegerField(default=0, help_text="Which writer's row (0 to 3).")),
                ('department', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_counts', to='backend.department')),
                ('job', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_counts', to='backend.job')),
                ('q1', _quarter(1)),
                ('q2', _quarter(2)),
                ('q3', _quarter(3)),
                ('q4', _quarter(4)),
                ('hires', models.GeneratedField(db_persist=True, expression=models.F('q1') + models.F('q2') + models.F('q3') + models.F('q4'), help_text="Hires in the year: the quarters' sum.", output_field=models.BigIntegerField())),
            ],
            options={
                'db_table': 'hire_counts',
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
