"""The staff roles: groups ops, compliance and admin with their permissions.

Later migrations extend a role when an app adds permissions. Editing a group in the admin is
possible and audited, but the migration's grants are the documented baseline (docs/security.md).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "ops": [
        "core.access_dashboard",
        "core.view_payments",
        "core.view_banking",
        "core.view_customers",
        "django_celery_beat.view_periodictask",
        "django_celery_results.view_taskresult",
    ],
    "compliance": [
        "core.access_dashboard",
        "core.view_compliance",
        "core.view_customers",
        "core.reveal_sensitive",
        "core.change_customer_status",
        "core.view_audit",
    ],
    "admin": [
        "core.access_dashboard",
        "core.view_audit",
        "core.manage_staff",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "auth.change_group",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "django_celery_results.view_taskresult",
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_staff_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
