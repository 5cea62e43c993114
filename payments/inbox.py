"""Processing of stored webhook deliveries: once, in one transaction, retried when they fail.

``webhook_process`` locks the event row, applies it and marks the outcome in the same
transaction, so a worker killed half-way leaves nothing behind and the redelivered task starts
again from scratch; an event already processed or ignored is left alone. A failure is recorded
(attempts, error, next retry with exponential backoff) and a beat sweep re-enqueues what is due,
as well as deliveries whose task the broker lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.queue import enqueue_on_commit

from . import handlers
from .models import WebhookEvent, WebhookEventStatus

logger = logging.getLogger("fintech.payments.inbox")

DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)


def retry_delay(attempts: int) -> timedelta:
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS))


def webhook_process(*, event_id: int) -> WebhookEvent:
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        if event.status in DONE:
            return event
        event.attempts += 1
        try:
            with transaction.atomic():
                applied = handlers.handle(event)
                # Run the ledger's deferred balance checks now, inside the savepoint, so an
                # unbalanced entry fails this event instead of the whole commit.
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        except (DatabaseError, Exception) as exc:
            event.status = WebhookEventStatus.FAILED
            event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            event.next_retry_at = (
                timezone.now() + retry_delay(event.attempts) if event.attempts < settings.WEBHOOK_MAX_ATTEMPTS else None
            )
            logger.warning("webhook %s (%s) failed, attempt %s: %s", event.pk, event.event_type, event.attempts, exc)
        else:
            event.status = WebhookEventStatus.PROCESSED if applied else WebhookEventStatus.IGNORED
            event.last_error, event.next_retry_at, event.processed_at = "", None, timezone.now()
        event.save(update_fields=["status", "attempts", "last_error", "next_retry_at", "processed_at", "payment"])
    return event


@dataclass
class ReplayResult:
    requeued: bool
    reason: str


def webhook_replay(*, event: WebhookEvent, actor, request=None, inline: bool = False) -> ReplayResult:
    """Run a failed or unprocessed event again; a processed or ignored one is left as it is."""
    from .tasks import process_webhook_event

    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status in DONE:
            return ReplayResult(False, f"already {event.status}; replaying it changes nothing")
        event.next_retry_at = timezone.now()
        event.save(update_fields=["next_retry_at"])
        audit_record(
            actor=actor,
            action="webhook.replayed",
            target=event,
            details={"provider": event.provider, "event_type": event.event_type, "status": event.status},
            request=request,
        )
        if not inline:
            enqueue_on_commit(process_webhook_event, event.pk)
    if inline:
        event = webhook_process(event_id=event.pk)
        return ReplayResult(True, event.status)
    return ReplayResult(True, "queued")


def webhook_sweep(*, limit: int = 500) -> int:
    """Re-enqueue failed events whose retry is due and received ones whose task seems lost."""
    from .tasks import process_webhook_event

    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_STALE_SECONDS)
    due = list(
        WebhookEvent.objects.filter(status=WebhookEventStatus.FAILED, next_retry_at__lte=now)
        .order_by("next_retry_at")
        .values_list("pk", flat=True)[:limit]
    )
    lost = list(
        WebhookEvent.objects.filter(status=WebhookEventStatus.RECEIVED, received_at__lte=stale)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in due + lost:
        enqueue_on_commit(process_webhook_event, event_id)
    return len(due) + len(lost)
