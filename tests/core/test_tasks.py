"""Celery plumbing on a real worker and the real Redis broker: on-commit enqueue, retries, failures."""

import time

import kombu.exceptions
import pytest
import redis
from celery import shared_task
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.checks import run_checks
from django.db import transaction
from django.test import override_settings
from django_celery_results.models import TaskResult

from fintech.celery import app
from fintech.core.celery_base import TransientError
from fintech.core.models import WorkerHeartbeat
from fintech.core.queue import CountdownTooLongError, enqueue_on_commit
from fintech.core.tasks import health_ping


@shared_task(bind=True, name="tests.always_transient", max_retries=2)
def always_transient(self, counter_key: str) -> None:
    """Counts its attempts in Redis, then fails with an error worth retrying."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.incr(counter_key)
    client.close()
    raise TransientError("gateway timed out")


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = app.conf.task_default_queue
    client.delete(queue)
    yield client, queue
    client.delete(queue)
    client.close()


@pytest.fixture
def worker(transactional_db, broker):
    with start_worker(app, perform_ping_check=False, shutdown_timeout=30) as running:
        yield running


def test_health_ping_enqueued_on_commit_runs_on_a_real_worker(worker):
    with transaction.atomic():
        enqueue_on_commit(health_ping)
        assert not WorkerHeartbeat.objects.exists()
    heartbeat = _wait_for(lambda: WorkerHeartbeat.objects.first())
    assert heartbeat.hostname


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_when_the_transaction_rolls_back(broker):
    client, queue = broker
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(health_ping)
        raise RuntimeError("the service failed")
    assert client.llen(queue) == 0

    with transaction.atomic():
        enqueue_on_commit(health_ping)
        assert client.llen(queue) == 0  # not before commit
    assert client.llen(queue) == 1


def test_a_failing_task_is_retried_with_backoff_then_recorded_as_failed(worker, broker, caplog):
    client, _ = broker
    counter_key = f"{app.conf.task_default_queue}:attempts"
    client.delete(counter_key)
    result = always_transient.delay(counter_key)

    failed = _wait_for(lambda: TaskResult.objects.filter(task_id=result.id, status="FAILURE").first(), timeout=60)
    assert failed.task_name == "tests.always_transient"
    assert "TransientError" in failed.result
    assert "gateway timed out" in failed.result
    assert int(client.get(counter_key)) == 3  # the first run and max_retries=2 retries
    client.delete(counter_key)
    assert any(
        record.name == "fintech.tasks" and record.levelname == "ERROR" and "failed for good" in record.getMessage()
        for record in caplog.records
    )


@pytest.mark.django_db(transaction=True)
def test_a_broker_failure_after_commit_is_logged_not_raised(monkeypatch, caplog):
    def unreachable(*args, **kwargs):
        raise kombu.exceptions.OperationalError("Error 111 connecting to broker. Connection refused.")

    monkeypatch.setattr(health_ping, "apply_async", unreachable)
    with transaction.atomic():
        enqueue_on_commit(health_ping)
    errors = [record for record in caplog.records if record.name == "fintech.tasks" and record.levelname == "ERROR"]
    assert [record.getMessage() for record in errors] == [
        "could not enqueue core.health_ping after commit; the broker is unreachable"
    ]


def test_countdown_longer_than_the_maximum_is_refused():
    with pytest.raises(CountdownTooLongError, match="CELERY_MAX_COUNTDOWN_SECONDS"):
        enqueue_on_commit(health_ping, countdown=settings.CELERY_MAX_COUNTDOWN_SECONDS + 1)
    with pytest.raises(CountdownTooLongError):
        enqueue_on_commit(health_ping, countdown=-1)


def test_celery_settings_for_idempotent_tasks():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert (
        app.conf.broker_transport_options["visibility_timeout"]
        > settings.CELERY_MAX_COUNTDOWN_SECONDS + settings.CELERY_TASK_TIME_LIMIT
    )
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert app.conf.result_backend == "django-db"


@override_settings(CELERY_VISIBILITY_TIMEOUT_SECONDS=3600 + 900)  # countdown 3600 + time limit 900
def test_system_check_rejects_a_visibility_timeout_shorter_than_a_countdown():
    errors = [error for error in run_checks() if error.id == "core.E001"]
    assert len(errors) == 1
    assert "must exceed the longest countdown" in errors[0].msg
