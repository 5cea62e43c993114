"""The staff roles: baseline permissions of the groups ops, compliance and admin.

Created by migration ``0005_roles`` and re-ensured after every ``migrate`` (a post_migrate
receiver): a missing group or baseline permission is added back; permissions an administrator
granted on top are kept. Later apps add their permissions here.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS, connections

ROLES: dict[str, list[str]] = {
    "ops": [
        "core.access_dashboard",
        "core.view_payments",
        "core.operate_payments",
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
        "compliance.review_hit",
        "compliance.confirm_true_match",
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


def roles_install(apps=global_apps) -> None:
    """Ensure each role group exists with its baseline permissions (idempotent)."""
    # Permissions are normally created after all migrations; roles need them now.
    for app_config in apps.get_app_configs():
        had_models = getattr(app_config, "models_module", None)
        app_config.models_module = had_models or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = had_models
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, codes in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for code in codes:
            app_label, codename = code.split(".")
            permission = permission_model.objects.filter(content_type__app_label=app_label, codename=codename).first()
            # A permission declared by a later migration does not exist yet in an earlier one's
            # state; the migration that declares it (or post_migrate) grants it.
            if permission is not None:
                group.permissions.add(permission)


def install_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    if "auth_group" in connections[using].introspection.table_names():
        roles_install()
