"""The permission core.operate_payments (replay webhooks, act on payments), granted to the ops role."""

from django.db import migrations


def grant_to_roles(apps, schema_editor):
    from fintech.core.roles import roles_install

    roles_install(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_roles"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="staffpermission",
            options={
                "default_permissions": (),
                "managed": False,
                "permissions": [
                    ("access_dashboard", "Can open the staff dashboard"),
                    ("view_payments", "Can view payments, refunds, disputes, the ledger and reconciliation"),
                    ("view_banking", "Can view linked bank accounts, transactions and transfers"),
                    ("view_compliance", "Can view screening, alerts, cases and reports"),
                    ("view_customers", "Can view customers (sensitive fields masked)"),
                    ("reveal_sensitive", "Can reveal a customer's sensitive fields (each reveal is audited)"),
                    ("change_customer_status", "Can change a customer's risk rating and KYC status"),
                    ("view_audit", "Can view the audit trail"),
                    ("manage_staff", "Can manage staff users, roles and settings"),
                    ("operate_payments", "Can replay webhooks and act on payments"),
                ],
            },
        ),
        # Reversing is a no-op: Django keeps permission rows (and so their grants) once created.
        migrations.RunPython(grant_to_roles, migrations.RunPython.noop),
    ]
