"""Writes of the core app."""

from django.utils import timezone

from .models import WorkerHeartbeat


def heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    """Record that the worker on ``hostname`` is alive now (one row per host, upserted)."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255], defaults={"last_seen_at": timezone.now()}
    )
    return heartbeat
