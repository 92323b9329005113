from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0003_diagnosis_explanation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="diagnosis",
            name="trigger",
            field=models.CharField(
                choices=[("raise", "Alarm raised"), ("manual", "Requested again (command or API)"),
                         ("follow_up", "Re-diagnosed as evidence grew (minutes after the raise)"),
                         ("escalation", "Re-diagnosed on a severity escalation")],
                default="raise", max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="diagnosis",
            name="stage",
            field=models.CharField(blank=True, help_text="Which re-diagnosis of the alarm: '+300s' (evidence up to 5 min after the raise), 'escalation:high'; empty for raise/manual.", max_length=32),
        ),
        migrations.AddField(
            model_name="diagnosis",
            name="alarm_severity",
            field=models.PositiveSmallIntegerField(blank=True, help_text="The alarm's severity when this diagnosis ran.", null=True),
        ),
        migrations.AddField(
            model_name="diagnosis",
            name="announced",
            field=models.BooleanField(default=False, help_text="A 'diagnosis' webhook event was sent for it (the raise, or a change of fault or band)."),
        ),
        migrations.AddConstraint(
            model_name="diagnosis",
            constraint=models.UniqueConstraint(condition=models.Q(("stage", ""), _negated=True), fields=("alarm", "stage"), name="one_diagnosis_per_alarm_stage"),
        ),
    ]
