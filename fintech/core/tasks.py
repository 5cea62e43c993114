"""Core tasks: thin, they call a service."""

import socket

from celery import shared_task

from . import services


@shared_task(name="core.health_ping", ignore_result=True)
def health_ping() -> None:
    """Scheduled by beat; records this worker's heartbeat (read by /healthz and the overview)."""
    services.heartbeat_record(hostname=health_ping.request.hostname or socket.gethostname())
