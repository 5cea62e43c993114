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
    """Scheduled nightly by beat: chain and signed checkpoints; recorded and shown on the audit page.

    A successful run signs a new checkpoint for the head it verified (``fintech.core.audit``).
    """
    verification = audit_chain_verify(triggered_by="beat")
    checkpoint = getattr(verification, "checkpoint", None)
    return {
        "ok": verification.ok,
        "events_checked": verification.events_checked,
        "checkpoint_seq": checkpoint.seq if checkpoint is not None else None,
    }
