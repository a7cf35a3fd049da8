"""The rejection log's status (open or resolved), one entry per row, and parked rows.

Existing entries get their row key; a row logged more than once keeps its first entry, with
the later attempts counted on it. An entry whose id is stored since is resolved (by no known
batch). Open entries whose only reason is a missing reference, from batches that were not
atomic, are marked parked: ``manage.py replay_rejections`` (run once after upgrading) sends
them again, and those still missing a reference park with waits of their own.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

CHUNK = 2000
_MODELS = {"departments": "Department", "jobs": "Job", "hired_employees": "HiredEmployee"}


def _log_each_row_once(apps, schema_editor):  # noqa: ANN001, ANN201 (Django's signature)
    from jobs.ingest.rejection_log import row_key

    Rejection = apps.get_model("backend", "Rejection")
    kept: dict[tuple[str, str], Any] = {}
    merged = []
    rows = Rejection.objects.select_related("batch").order_by("id")
    last = 0
    while page := list(rows.filter(id__gt=last)[:CHUNK]):
        last = page[-1].id
        changed = []
        for entry in page:
            key = (entry.table, row_key(entry.table, entry.raw))
            first = kept.get(key)
            if first is not None:  # the same row logged again: one entry, one more attempt
                first.attempts += 1
                first.reasons = entry.reasons
                first.updated_at = entry.created_at
                merged.append(entry.id)
                continue
            entry.row_key = key[1]
            entry.updated_at = entry.created_at
            kept[key] = entry
            changed.append(entry)
        _set_status(apps, changed)
        Rejection.objects.bulk_update(
            changed, ["row_key", "updated_at", "status", "parked"], batch_size=500
        )
    Rejection.objects.bulk_update(
        list(kept.values()), ["attempts", "reasons", "updated_at"], batch_size=500
    )
    for start in range(0, len(merged), CHUNK):
        Rejection.objects.filter(id__in=merged[start : start + CHUNK]).delete()
    if schema_editor.connection.vendor == "postgresql":
        # the indexes below cannot be built while the deferred foreign-key checks of these
        # updates are pending: run them now
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _set_status(apps, entries):  # noqa: ANN001, ANN202
    by_table: dict[str, set[int]] = {}
    for entry in entries:
        if entry.row_id is not None:
            by_table.setdefault(entry.table, set()).add(entry.row_id)
    stored: set[tuple[str, int]] = set()
    for table, ids in by_table.items():
        model = apps.get_model("backend", _MODELS.get(table, "Department"))
        if table in _MODELS:
            found = model.objects.filter(id__in=sorted(ids)).values_list("id", flat=True)
            stored.update((table, row_id) for row_id in found)
    for entry in entries:
        codes = {r.get("code") for r in entry.reasons if isinstance(r, dict)}
        if (entry.table, entry.row_id) in stored and not codes & {"duplicate", "duplicate_in_batch"}:
            entry.status = "resolved"
        elif codes == {"unknown_reference"} and not entry.batch.atomic:
            entry.parked = True


class Migration(migrations.Migration):

    dependencies = [
        ('backend', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='ParkedReference',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('references', models.CharField(help_text='The referenced table.', max_length=32)),
                ('ref_id', models.IntegerField(help_text='The missing id.')),
            ],
            options={
                'db_table': 'parked_references',
            },
        ),
        migrations.AddField(
            model_name='rejection',
            name='attempts',
            field=models.PositiveIntegerField(default=1, help_text='How often the row was received.'),
        ),
        migrations.AddField(
            model_name='rejection',
            name='parked',
            field=models.BooleanField(default=False, help_text='Only missing references kept it out: replayed when they arrive.'),
        ),
        migrations.AddField(
            model_name='rejection',
            name='resolved_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='rejection',
            name='resolved_by',
            field=models.ForeignKey(blank=True, help_text='The batch that stored the row.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='resolved_rejections', to='backend.batch'),
        ),
        migrations.AddField(
            model_name='rejection',
            name='row_key',
            field=models.CharField(default='', help_text='A digest of the table and the raw row: one entry per row.', max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='rejection',
            name='status',
            field=models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=8),
        ),
        migrations.AddField(
            model_name='rejection',
            name='updated_at',
            field=models.DateTimeField(blank=True, help_text='The latest attempt.', null=True),
        ),
        migrations.AlterField(
            model_name='batch',
            name='source',
            field=models.CharField(choices=[('graphql', 'Graphql'), ('rest', 'Rest'), ('csv', 'Csv'), ('restore', 'Restore'), ('replay', 'Replay')], max_length=16),
        ),
        migrations.AlterField(
            model_name='rejection',
            name='batch',
            field=models.ForeignKey(help_text='The batch that first logged the row.', on_delete=django.db.models.deletion.CASCADE, related_name='rejections', to='backend.batch'),
        ),
        migrations.AlterField(
            model_name='rejection',
            name='reasons',
            field=models.JSONField(help_text="A list of {field, code, message}: the latest attempt's."),
        ),
        migrations.AlterField(
            model_name='rejection',
            name='source',
            field=models.CharField(choices=[('graphql', 'Graphql'), ('rest', 'Rest'), ('csv', 'Csv'), ('restore', 'Restore'), ('replay', 'Replay')], max_length=16),
        ),
        migrations.RunPython(_log_each_row_once, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='rejection',
            index=models.Index(fields=['status', 'table', 'id'], name='rejections_status_b948fc_idx'),
        ),
        migrations.AddIndex(
            model_name='rejection',
            index=models.Index(condition=models.Q(('status', 'open')), fields=['table', 'row_id'], name='rejections_open_row_ids'),
        ),
        migrations.AddConstraint(
            model_name='rejection',
            constraint=models.UniqueConstraint(fields=('table', 'row_key'), name='rejections_one_per_row'),
        ),
        migrations.AddField(
            model_name='parkedreference',
            name='rejection',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='waits', to='backend.rejection'),
        ),
        migrations.AddIndex(
            model_name='parkedreference',
            index=models.Index(fields=['references', 'ref_id'], name='parked_refe_referen_232b42_idx'),
        ),
    ]
