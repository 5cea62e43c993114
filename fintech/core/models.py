from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the beat-scheduled health task.

    One row per worker host; ``/healthz`` and the overview read the newest. A stale newest
    row means no worker is consuming, or beat is not scheduling.
    """

    hostname = models.CharField(max_length=255, unique=True)
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
