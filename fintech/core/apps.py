from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    """Shared kernel: what every domain app needs (health, task plumbing, schedules; later money,
    encrypted fields, audit trail, customers and staff roles)."""

    name = "fintech.core"
    label = "core"
    verbose_name = "Core"

    # Beat schedules this app needs; see fintech.core.schedules.
    standard_schedules = (
        {
            "name": "core: worker health ping",
            "task": "core.health_ping",
            "every_seconds_setting": "HEALTH_PING_INTERVAL_SECONDS",
            "description": "Proves a worker answers; /healthz and the overview read its heartbeat.",
        },
        {
            "name": "core: verify audit chain",
            "task": "core.verify_audit_chain",
            "crontab": {"minute": "30", "hour": "2"},
            "description": "Recomputes the audit trail's hash chain nightly (02:30 UTC) and records the result.",
        },
    )

    def ready(self) -> None:
        from . import checks, roles, schedules, signals  # noqa: F401  (registers system checks and audit receivers)

        post_migrate.connect(schedules.install_after_migrate, sender=self, dispatch_uid="core.install_schedules")
        post_migrate.connect(roles.install_after_migrate, sender=self, dispatch_uid="core.install_roles")
