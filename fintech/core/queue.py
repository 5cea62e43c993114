"""Enqueue Celery tasks only once the surrounding transaction has committed.

A task enqueued inside a transaction that later rolls back would act on rows that never
existed; one enqueued before commit may run before its rows are visible. Every service
enqueues through ``enqueue_on_commit``.
"""

import logging
from typing import Any

from celery import Task
from django.conf import settings
from django.db import transaction

logger = logging.getLogger("fintech.tasks")


class CountdownTooLongError(ValueError):
    """A countdown beyond CELERY_MAX_COUNTDOWN_SECONDS could outlive the broker's visibility timeout."""


def enqueue_on_commit(task: Task, *args: Any, countdown: int | None = None, **kwargs: Any) -> None:
    """Send ``task(*args, **kwargs)`` when the current transaction commits (now, outside one)."""
    if countdown is not None and not 0 <= countdown <= settings.CELERY_MAX_COUNTDOWN_SECONDS:
        raise CountdownTooLongError(
            f"countdown {countdown}s is outside 0..{settings.CELERY_MAX_COUNTDOWN_SECONDS}s "
            "(CELERY_MAX_COUNTDOWN_SECONDS); schedule longer delays with Celery beat."
        )
    delay = float(countdown or 0)  # Celery sends a zero countdown at once, with no ETA

    def send() -> None:
        try:
            task.apply_async(args=args, kwargs=kwargs, countdown=delay)
        except Exception:
            # The transaction has committed: failing the request now would misreport it. Work
            # that must not be lost keeps its own state (e.g. an inbox row) that a beat sweep resends.
            logger.exception("could not enqueue %s after commit; the broker is unreachable", task.name)

    transaction.on_commit(send)
