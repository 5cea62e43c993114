"""Customer.status: the relationship, active or frozen (a confirmed sanctions match freezes it)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_operate_payments"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="status",
            field=models.CharField(
                choices=[("active", "Active"), ("frozen", "Frozen")], default="active", max_length=16
            ),
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "frozen"])), name="core_customer_status"
            ),
        ),
    ]
