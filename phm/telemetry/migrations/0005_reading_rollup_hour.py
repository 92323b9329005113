import django.db.models.deletion
from django.db import migrations, models


def backfill_hours(apps, schema_editor):
    # Hour roll-ups of the minute roll-ups stored before this table existed (the same SQL as
    # rollups.rebuild_rollups, inlined so the migration does not change when that module does).
    hour = "((minute - (((minute % 60) + 60) % 60)) / 60)"
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO telemetry_readingrolluphour (sensor_id, hour, samples, total, minimum, maximum) "
            f"SELECT sensor_id, {hour}, SUM(samples), SUM(total), MIN(minimum), MAX(maximum) FROM telemetry_readingrollup GROUP BY 1, 2"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('assets', '0001_initial'),
        ('telemetry', '0004_reading_rollup'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReadingRollupHour',
            fields=[
                ('pk', models.CompositePrimaryKey('sensor', 'hour', blank=True, editable=False, primary_key=True, serialize=False)),
                ('hour', models.BigIntegerField(help_text='floor(ts / 1 h): hours since the Unix epoch.')),
                ('samples', models.IntegerField()),
                ('total', models.FloatField(help_text='Sum of the values; mean = total / samples.')),
                ('minimum', models.FloatField()),
                ('maximum', models.FloatField()),
                ('sensor', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='hour_rollups', to='assets.sensor')),
            ],
        ),
        migrations.RunPython(backfill_hours, migrations.RunPython.noop),
    ]
