"""System checks for settings whose combination matters."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.compatibility)
def check_visibility_timeout(app_configs, **kwargs):
    """With acks_late, Redis redelivers a task not acknowledged within the visibility timeout.

    Any countdown/ETA or run time longer than that would make the task run twice.
    """
    visibility = settings.CELERY_VISIBILITY_TIMEOUT_SECONDS
    # A message waits out its countdown (or retry backoff) unacknowledged, then runs up to the limit.
    longest = (
        max(settings.CELERY_MAX_COUNTDOWN_SECONDS, settings.CELERY_RETRY_BACKOFF_MAX_SECONDS)
        + settings.CELERY_TASK_TIME_LIMIT
    )
    if visibility <= longest:
        return [
            Error(
                f"CELERY_VISIBILITY_TIMEOUT_SECONDS ({visibility}) must exceed the longest countdown or "
                f"retry backoff plus the task time limit ({longest}).",
                hint="Raise CELERY_VISIBILITY_TIMEOUT_SECONDS or lower CELERY_MAX_COUNTDOWN_SECONDS.",
                id="core.E001",
            )
        ]
    return []
