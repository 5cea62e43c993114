"""/healthz: database, Redis and a recent worker heartbeat."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from fintech.core.models import WorkerHeartbeat
from fintech.core.services import heartbeat_record

pytestmark = pytest.mark.django_db


def test_healthy_when_database_redis_and_a_recent_heartbeat_answer(client):
    heartbeat_record(hostname="worker@a")
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["worker"]["ok"] is True
    assert body["checks"]["worker"]["hostname"] == "worker@a"
    assert response.headers["Cache-Control"].startswith("max-age=0")


def test_failing_when_no_worker_ever_answered(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {
        "ok": False,
        "hostname": None,
        "last_heartbeat": None,
        "age_seconds": None,
        "max_age_seconds": 120,
    }


@override_settings(HEALTH_WORKER_MAX_AGE_SECONDS=60)
def test_failing_when_the_newest_heartbeat_is_stale(client):
    WorkerHeartbeat.objects.create(hostname="worker@old", last_seen_at=timezone.now() - timedelta(seconds=61))
    response = client.get("/healthz")
    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["ok"] is False
    assert worker["age_seconds"] >= 61


def test_newest_heartbeat_of_several_workers_counts(client):
    WorkerHeartbeat.objects.create(hostname="worker@old", last_seen_at=timezone.now() - timedelta(hours=2))
    heartbeat_record(hostname="worker@new")
    assert client.get("/healthz").json()["checks"]["worker"]["hostname"] == "worker@new"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_failing_when_redis_is_unreachable(client):
    heartbeat_record(hostname="worker@a")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert response.json()["checks"]["database"] == {"ok": True}


def test_heartbeat_is_one_row_per_host(client):
    heartbeat_record(hostname="worker@a")
    heartbeat_record(hostname="worker@a")
    heartbeat_record(hostname="worker@b")
    assert WorkerHeartbeat.objects.count() == 2


def test_only_safe_methods(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 503
