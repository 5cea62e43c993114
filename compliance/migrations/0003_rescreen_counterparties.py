"""Rescreen runs cover payment counterparties after the customers: a phase, a cursor over the
counterparty subjects, and the counterparties' share of the progress counts."""

from django.db import migrations, models
from django.db.models import F

UNFINISHED = ("queued", "running", "failed")


def count_counterparties_in_started_runs(apps, schema_editor):
    """A run started before this migration counted only customers in ``total``: it now goes on to
    the counterparties once its customers are done, so they join its total (as a new run's would)."""
    RescreenRun = apps.get_model("compliance", "RescreenRun")
    ScreeningSubject = apps.get_model("compliance", "ScreeningSubject")
    started = RescreenRun.objects.filter(status__in=UNFINISHED, started_at__isnull=False)
    if not started.exists():
        return
    counterparties = ScreeningSubject.objects.filter(kind="counterparty").count()
    started.update(counterparties_total=counterparties, total=F("total") + counterparties)


def uncount_counterparties(apps, schema_editor):
    RescreenRun = apps.get_model("compliance", "RescreenRun")
    RescreenRun.objects.update(total=F("total") - F("counterparties_total"), done=F("done") - F("counterparties_done"))


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0002_review"),
    ]

    operations = [
        migrations.AddField(
            model_name="rescreenrun",
            name="phase",
            field=models.CharField(
                choices=[("customers", "Customers"), ("counterparties", "Payment counterparties")],
                default="customers",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="rescreenrun",
            name="counterparties_total",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="rescreenrun",
            name="counterparties_done",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="rescreenrun",
            name="last_subject_id",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="rescreenrun",
            name="trigger",
            field=models.CharField(
                choices=[("list_version", "New list version (delta)"), ("manual", "Manual (everyone, full lists)")],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="rescreenrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("phase__in", ["customers", "counterparties"])), name="compliance_rescreen_phase"
            ),
        ),
        migrations.RunPython(count_counterparties_in_started_runs, uncount_counterparties),
    ]
