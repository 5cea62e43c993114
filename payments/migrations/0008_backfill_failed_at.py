"""Every payment that failed gets a failure time (dunning relies on it since it skips the plan
lookup for payments that never failed). Before 0003 there was no such column, and until now a
failure without a decline code left it empty: such rows take the time of their status event,
else of their last change."""

from django.db import migrations
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce


def backfill(apps, schema_editor):
    Payment = apps.get_model("payments", "Payment")
    DunningPlan = apps.get_model("payments", "DunningPlan")
    has_plan = Exists(DunningPlan.objects.filter(payment=OuterRef("pk")))
    Payment.objects.filter(Q(status="failed") | has_plan, failed_at__isnull=True).update(
        failed_at=Coalesce("status_event_at", "updated_at")
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0007_refund_method")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
