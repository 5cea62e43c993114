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
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.queue import enqueue_on_commit

from . import handlers
from .models import WebhookEvent, WebhookEventStatus

logger = logging.getLogger("fintech.payments.inbox")

DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)


DRAIN_FLAG = "payments:webhook-drain-queued"
DRAIN_BATCH = 200


def webhook_drain_request() -> None:
    """After a delivery commits: queue one drain task unless one is already queued (coalesced).

    Publishing a Celery message costs more than storing the delivery; at high rates one drain
    task per burst applies every waiting event instead of one task per event.
    """
    from .tasks import drain_webhooks

    if cache.add(DRAIN_FLAG, 1, timeout=settings.WEBHOOK_STALE_SECONDS):
        enqueue_on_commit(drain_webhooks)


def webhook_drain(*, max_events: int = 100_000) -> int:
    """Apply received events oldest first until none is left; the number applied.

    The queued flag is cleared before each look, so a delivery committed after the last look
    finds no flag and queues a drain of its own: nothing waits for the sweep.
    """
    applied = 0
    while applied < max_events:
        cache.delete(DRAIN_FLAG)
        batch = list(
            WebhookEvent.objects.filter(status=WebhookEventStatus.RECEIVED)
            .order_by("pk")
            .values_list("pk", flat=True)[:DRAIN_BATCH]
        )
        if not batch:
            break
        for event_id in batch:
            webhook_process(event_id=event_id, skip_locked=True)
        applied += len(batch)
    return applied


def retry_delay(attempts: int) -> timedelta:
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS))


def webhook_process(*, event_id: int, skip_locked: bool = False) -> WebhookEvent | None:
    """Apply one event; with ``skip_locked``, None when another worker holds it right now."""
    with transaction.atomic():
        # Without waiting for the WAL flush: a crash can only lose whole processing transactions,
        # which leaves their events "received" for the sweep to apply again. Deliveries
        # themselves are stored with a synchronous commit before the gateway gets its 200.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        event = WebhookEvent.objects.select_for_update(skip_locked=skip_locked).filter(pk=event_id).first()
        if event is None:
            if skip_locked:
                return None
            raise WebhookEvent.DoesNotExist(f"no webhook event {event_id}")
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
        processed = webhook_process(event_id=event.pk)
        return ReplayResult(True, processed.status if processed else "in progress elsewhere")
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
