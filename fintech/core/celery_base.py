"""The base class of every task: retries with exponential backoff and jitter, then a recorded failure.

A task lists the exceptions worth retrying in ``autoretry_for`` (default: lost database or broker
connections, Redis timeouts, and ``TransientError``). After ``max_retries`` the failure is stored by
django-celery-results (admin: Task results, status FAILURE) and logged.
"""

import logging

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("fintech.tasks")


class TransientError(Exception):
    """A failure that may pass on its own (a timeout, a 5xx from a provider): retry later."""


class FintechTask(Task):
    autoretry_for = (TransientError, OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
    retry_jitter = True

    @property
    def retry_backoff(self) -> int:
        return settings.CELERY_RETRY_BACKOFF_SECONDS

    @property
    def retry_backoff_max(self) -> int:
        return settings.CELERY_RETRY_BACKOFF_MAX_SECONDS

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return settings.CELERY_MAX_RETRIES

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        logger.error("task %s[%s] failed for good: %s: %s", self.name, task_id, type(exc).__name__, exc)
        super().on_failure(exc, task_id, args, kwargs, einfo)
