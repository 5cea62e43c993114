from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    """Depends on fintech.core, payments and banking; nothing depends on it."""

    name = "compliance"
    verbose_name = "Compliance"
    # Beat schedules (fintech.core.schedules).
    standard_schedules = [
        {
            "name": "compliance: refresh sanctions lists",
            "task": "compliance.refresh_sanctions_lists",
            "description": "Loads each configured sanctions list (SANCTIONS_SOURCES) as a new version if it changed.",
            "every_seconds_setting": "SANCTIONS_REFRESH_SECONDS",
        },
        {
            "name": "compliance: screen customers missed by a hook",
            "task": "compliance.screen_unscreened",
            "description": "Screens customers never screened, or changed since their last screening (a lost hook).",
            "every_seconds_setting": "SCREENING_SWEEP_SECONDS",
        },
        {
            "name": "compliance: screen counterparties missed by a hook",
            "task": "compliance.screen_unscreened_counterparties",
            "description": "Screens payers of the last 7 days' payments that no screening records (a lost hook).",
            "every_seconds_setting": "SCREENING_SWEEP_SECONDS",
        },
        {
            "name": "compliance: resume stalled rescreens",
            "task": "compliance.resume_stalled_rescreens",
            "description": "Queues again every unfinished rescreen run that no worker holds (a lost task, a crash).",
            "every_seconds_setting": "SCREENING_SWEEP_SECONDS",
        },
    ]

    def ready(self) -> None:
        from .hooks import list_version_activated
        from .lists.signals import list_version_activated as activated

        # A new active list version: screeners go stale and customers are rescreened by delta.
        activated.connect(list_version_activated, dispatch_uid="compliance.rescreen_on_activation")
