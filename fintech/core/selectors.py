"""Reads of the core app for pages and health checks."""

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from .models import WorkerHeartbeat


@dataclass(frozen=True)
class WorkerHealth:
    heartbeat: WorkerHeartbeat | None
    age_seconds: float | None
    max_age_seconds: int

    @property
    def ok(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds


def worker_health() -> WorkerHealth:
    heartbeat = WorkerHeartbeat.objects.order_by("-last_seen_at").first()
    age = (timezone.now() - heartbeat.last_seen_at).total_seconds() if heartbeat else None
    return WorkerHealth(heartbeat=heartbeat, age_seconds=age, max_age_seconds=settings.HEALTH_WORKER_MAX_AGE_SECONDS)
