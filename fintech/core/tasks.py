"""Core tasks: thin, they call a service."""

import socket

from celery import shared_task

from . import services
from .audit import audit_chain_verify


@shared_task(name="core.health_ping", ignore_result=True)
def health_ping() -> None:
    """Scheduled by beat; records this worker's heartbeat (read by /healthz and the overview)."""
    services.heartbeat_record(hostname=health_ping.request.hostname or socket.gethostname())


@shared_task(name="core.verify_audit_chain")
def verify_audit_chain() -> dict:
    """Scheduled nightly by beat; the result is recorded and shown on the audit page."""
    verification = audit_chain_verify(triggered_by="beat")
    return {"ok": verification.ok, "events_checked": verification.events_checked}
