"""Standard beat schedules: created after migrate and by a command, never overwriting staff edits."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from fintech.core.schedules import schedules_install

pytestmark = pytest.mark.django_db
HEALTH_PING = "core: worker health ping"
AUDIT_CHAIN = "core: verify audit chain"
PAYMENTS = [
    "payments: retry failed and lost webhooks",
    "payments: dunning retries",
    "payments: resolve pending Braintree refunds",
    "payments: purge expired idempotency keys",
]
SANCTIONS_REFRESH = "compliance: refresh sanctions lists"
SCREENING_SWEEPS = [
    "compliance: screen customers missed by a hook",
    "compliance: screen counterparties missed by a hook",
    "compliance: resume stalled rescreens",
]
ALL_STANDARD = [HEALTH_PING, AUDIT_CHAIN, *PAYMENTS, SANCTIONS_REFRESH, *SCREENING_SWEEPS]


def test_migrate_installs_the_standard_schedules():
    task = PeriodicTask.objects.get(name=HEALTH_PING)
    assert task.task == "core.health_ping"
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (30, IntervalSchedule.SECONDS)
    # due as soon as beat starts, not one interval after the installation
    assert task.last_run_at is not None
    assert task.schedule.is_due(task.last_run_at).is_due


def test_the_audit_chain_is_verified_nightly():
    task = PeriodicTask.objects.get(name=AUDIT_CHAIN)
    assert task.task == "core.verify_audit_chain"
    assert task.interval is None
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "2", "UTC")


def test_sanctions_lists_refresh_every_configured_interval(settings):
    task = PeriodicTask.objects.get(name=SANCTIONS_REFRESH)
    assert task.task == "compliance.refresh_sanctions_lists"
    every = settings.SANCTIONS_REFRESH_HOURS * 3600
    assert (task.interval.every, task.interval.period) == (every, IntervalSchedule.SECONDS)


def test_screening_sweeps_run_every_configured_interval(settings):
    tasks = {name: PeriodicTask.objects.get(name=name) for name in SCREENING_SWEEPS}
    assert [task.task for task in tasks.values()] == [
        "compliance.screen_unscreened",
        "compliance.screen_unscreened_counterparties",
        "compliance.resume_stalled_rescreens",
    ]
    for task in tasks.values():
        assert (task.interval.every, task.interval.period) == (
            settings.SCREENING_SWEEP_SECONDS,
            IntervalSchedule.SECONDS,
        )
        assert task.enabled


def test_install_is_idempotent_and_keeps_staff_edits():
    task = PeriodicTask.objects.get(name=HEALTH_PING)
    slower, _ = IntervalSchedule.objects.get_or_create(every=300, period=IntervalSchedule.SECONDS)
    task.interval = slower
    task.enabled = False
    task.save()

    result = schedules_install()
    assert result.created == [] and result.unchanged == ALL_STANDARD
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (300, False)
    assert PeriodicTask.objects.filter(name=HEALTH_PING).count() == 1


def test_reset_restores_the_defaults():
    PeriodicTask.objects.filter(name=HEALTH_PING).update(enabled=False)
    assert schedules_install(reset=True).reset == ALL_STANDARD
    assert PeriodicTask.objects.get(name=HEALTH_PING).enabled


def test_command_recreates_a_deleted_schedule(capsys):
    PeriodicTask.objects.filter(name=HEALTH_PING).delete()
    call_command("install_schedules")
    assert "created   core: worker health ping" in capsys.readouterr().out
    assert PeriodicTask.objects.filter(name=HEALTH_PING, task="core.health_ping").exists()
