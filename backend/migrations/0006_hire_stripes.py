"""Issue 14: the hires summary in stripes, so that concurrent writers never wait for each
other's summary rows, and two small rollups (per department and year, per job and year) in
place of the all-time totals per department and job, whose upserts cost writers as much as the
summary's own (``backend/hire_summary.py``). The tables are made again, empty: 0007 made
``hire_counts`` again with a column per quarter, and it installs the triggers and fills the
summary from the rows (``install`` writes the current tables' shape, which these are not).

Going back leaves 0005's tables empty and without triggers, as 0005 alone makes them.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from backend import hire_summary


def uninstall(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    hire_summary.uninstall(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('backend', '0005_hire_counts'),
    ]

    operations = [
        migrations.RunPython(uninstall, migrations.RunPython.noop),
        migrations.DeleteModel(name='HireTotal'),
        migrations.DeleteModel(name='HireCount'),
        migrations.CreateModel(
            name='HireCount',
            fields=[
                ('pk', models.CompositePrimaryKey('year', 'department', 'job', 'quarter', 'stripe', blank=True, editable=False, primary_key=True, serialize=False)),
                ('year', models.IntegerField(help_text="The hire's year, in UTC.")),
                ('quarter', models.SmallIntegerField(help_text='1 to 4, in UTC.')),
                ('stripe', models.SmallIntegerField(default=0, help_text="Which writer's row (0 to 3).")),
                ('hires', models.BigIntegerField()),
                ('department', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_counts', to='backend.department')),
                ('job', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_counts', to='backend.job')),
            ],
            options={
                'db_table': 'hire_counts',
            },
        ),
        migrations.CreateModel(
            name='DepartmentYear',
            fields=[
                ('pk', models.CompositePrimaryKey('year', 'department', 'stripe', blank=True, editable=False, primary_key=True, serialize=False)),
                ('year', models.IntegerField(help_text="The hire's year, in UTC.")),
                ('stripe', models.SmallIntegerField(default=0, help_text="Which writer's row (0 to 3).")),
                ('hires', models.BigIntegerField()),
                ('department', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_years', to='backend.department')),
            ],
            options={
                'db_table': 'department_years',
            },
        ),
        migrations.CreateModel(
            name='JobYear',
            fields=[
                ('pk', models.CompositePrimaryKey('year', 'job', 'stripe', blank=True, editable=False, primary_key=True, serialize=False)),
                ('year', models.IntegerField(help_text="The hire's year, in UTC.")),
                ('stripe', models.SmallIntegerField(default=0, help_text="Which writer's row (0 to 3).")),
                ('hires', models.BigIntegerField()),
                ('job', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='hire_years', to='backend.job')),
            ],
            options={
                'db_table': 'job_years',
            },
        ),
    ]
