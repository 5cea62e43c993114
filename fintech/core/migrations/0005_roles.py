"""The staff roles: groups ops, compliance and admin with their baseline permissions
(fintech.core.roles, which also re-ensures them after every migrate)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from fintech.core.roles import roles_install

    roles_install(apps)


def remove_roles(apps, schema_editor):
    from fintech.core.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_staff_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
