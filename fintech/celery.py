"""The Celery application: Redis broker, settings from Django (CELERY_*), tasks autodiscovered.

Workers: ``celery -A fintech worker``; beat: ``celery -A fintech beat`` (database scheduler,
schedules editable in the admin under Periodic tasks).
"""

from celery import Celery

import fintech

fintech.configure_settings_module()

app = Celery("fintech", task_cls="fintech.core.celery_base:FintechTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
