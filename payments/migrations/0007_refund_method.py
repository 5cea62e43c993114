from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0006_payment_payer"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="method",
            field=models.CharField(choices=[("refund", "Refund"), ("void", "Void")], default="refund", max_length=8),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(("method__in", ["refund", "void"])), name="payments_refund_method_valid"
            ),
        ),
    ]
