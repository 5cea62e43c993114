"""The project's standard Celery beat schedules, declared by each app and installed idempotently.

Each AppConfig may list ``standard_schedules``: dicts with ``name``, ``task``, ``description``
and either ``every_seconds``, ``every_seconds_setting`` (a settings name) or ``crontab``
(django-celery-beat CrontabSchedule fields). ``schedules_install`` creates the missing ones
after every ``migrate`` and from ``manage.py install_schedules``. A schedule that already exists
is left as staff edited it in the admin, unless ``reset=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


@dataclass
class InstallResult:
    created: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def standard_schedules() -> list[dict]:
    declared: list[dict] = []
    for config in apps.get_app_configs():
        declared.extend(getattr(config, "standard_schedules", ()))
    names = [entry["name"] for entry in declared]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"standard schedule names must be unique: {sorted(duplicates)}")
    return declared


def _schedule_fields(entry: dict) -> dict:
    if "crontab" in entry:
        crontab, _ = CrontabSchedule.objects.get_or_create(**{"timezone": "UTC", **entry["crontab"]})
        return {"crontab": crontab, "interval": None}
    seconds = int(entry.get("every_seconds") or getattr(settings, entry["every_seconds_setting"]))
    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    # Beat counts a new interval from the row's creation; one interval back makes the first run
    # due as soon as beat starts, so a fresh installation reports its health at once.
    return {"interval": interval, "crontab": None, "last_run_at": timezone.now() - timedelta(seconds=seconds)}


@transaction.atomic
def schedules_install(*, reset: bool = False) -> InstallResult:
    result = InstallResult()
    for entry in standard_schedules():
        existing = PeriodicTask.objects.filter(name=entry["name"]).first()
        if existing is not None and not reset:
            result.unchanged.append(entry["name"])
            continue
        values = {
            "task": entry["task"],
            "description": entry.get("description", ""),
            "enabled": True,
            **_schedule_fields(entry),
        }
        PeriodicTask.objects.update_or_create(name=entry["name"], defaults=values)
        (result.reset if existing else result.created).append(entry["name"])
    return result


def install_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate receiver: a deploy that migrates also gets any new standard schedule."""
    if PeriodicTask._meta.db_table in connections[using].introspection.table_names():
        schedules_install()
