"""Processing of stored webhook deliveries: once, in one transaction, retried when they fail.

An event is applied and its outcome recorded in the same transaction, so a worker killed
half-way leaves nothing behind and the redelivered task starts again from scratch; an event
already processed or ignored is left alone. A failure is recorded (attempts, error, next retry
with exponential backoff) and a beat sweep re-enqueues what is due, as well as deliveries whose
task the broker lost.

Two entry points share one per-event step (``_apply``):

- ``webhook_drain`` (the coalesced task queued by the endpoints) takes up to ``DRAIN_BATCH``
  received events oldest first with ``FOR UPDATE SKIP LOCKED`` and applies them in ONE
  transaction, each inside its own savepoint: an event that fails rolls back only its savepoint
  and is marked failed; the outcomes of the whole batch are written with one UPDATE before the
  commit. Two drains never take the same event.
- ``webhook_process`` applies one event by id (retries, replays, redelivered tasks).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.prepared import prepared_cursor, session_ended
from fintech.core.queue import enqueue_on_commit

from . import handlers
from .models import WebhookEvent, WebhookEventStatus

logger = logging.getLogger("fintech.payments.inbox")

DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)
OUTCOME_FIELDS = ["status", "attempts", "last_error", "next_retry_at", "processed_at", "payment"]

DRAIN_FLAG = "payments:webhook-drain-queued"
# Events applied per drain transaction. Larger batches save commits and round trips; but each
# event's savepoint that writes is a subtransaction, and past 64 of them in one transaction
# PostgreSQL's per-backend subtransaction cache overflows, which slows every snapshot taken on
# the server. 50 stays under that and holds the rows a batch locks for a few tens of ms.
DRAIN_BATCH = 50
# Events one drain applies at most; the drain task then queues the next one (tasks.drain_webhooks).
DRAIN_MAX_EVENTS = 100_000
# Inside a drain, an event waits at most this long for a row another transaction holds (a
# second drain, a single-event retry). It then stays "received" and is taken again by the next
# batch, after the other transaction committed: two drains that lock the same payments in
# opposite order never wait for PostgreSQL's deadlock detection, and the event is not a failure.
DRAIN_LOCK_TIMEOUT_MS = 200
_LOCK_NOT_AVAILABLE = "55P03"
# A drain whose batch found only events of payments other drains are applying waits this long
# for them, at most this many times in a row, instead of ending while the backlog lasts.
DRAIN_PAUSE_SECONDS = 0.02
DRAIN_PAUSES = 25
# First key of the drains' advisory locks on partition keys (the second is the key's hash).
DRAIN_LOCK_SPACE = 0x77686B31
_TRY_LOCK_KEYS = "SELECT key FROM unnest(%s::text[]) AS key WHERE NOT pg_try_advisory_xact_lock(%s, hashtext(key))"

_drain_flag_client: redis.Redis | None = None
# When this process last set the drain flag (time.monotonic), for WEBHOOK_DRAIN_SIGNAL_WINDOW_MS.
_signalled_at = float("-inf")


def _drain_flag_redis() -> redis.Redis:
    """A client of the cache's Redis, kept for the process (the flag is set on every delivery)."""
    global _drain_flag_client
    if _drain_flag_client is None:
        location = settings.CACHES["default"]["LOCATION"]
        _drain_flag_client = redis.Redis.from_url(location, socket_connect_timeout=2, socket_timeout=2)
    return _drain_flag_client


def webhook_drain_request() -> None:
    """After a delivery committed: make sure a drain will look for it (coalesced).

    Publishing a Celery message costs more than storing the delivery; at high rates one drain
    task per burst applies every waiting event instead of one task per event. The flag is the
    cache entry ``DRAIN_FLAG`` (so ``cache.get``/``cache.delete`` see it), set with one raw
    ``SET NX EX`` on a kept connection: the cheapest atomic "first since the last look"; the
    delivery that sets it queues the drain.

    A process that set the flag less than ``WEBHOOK_DRAIN_SIGNAL_WINDOW_MS`` ago does not set it
    again: the drain that clears that flag looks once more at least that long after clearing it
    (``webhook_drain``), after this delivery's commit. At high rates this spares nearly every
    delivery its Redis round trip.
    """
    global _signalled_at
    from .tasks import drain_webhooks

    now = time.monotonic()
    if now - _signalled_at < settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS / 1000:
        return
    try:
        first = _drain_flag_redis().set(cache.make_key(DRAIN_FLAG), 1, nx=True, ex=settings.WEBHOOK_STALE_SECONDS)
    except redis.RedisError:
        # The delivery is stored; without Redis there is no broker either. The beat sweep
        # enqueues it once it is WEBHOOK_STALE_SECONDS old.
        logger.exception("could not set the webhook drain flag; the sweep will pick the delivery up")
        return
    # Only a flag known to be set opens the window; the time is taken before the SET, so the
    # window never outlasts the drain's closing look.
    _signalled_at = now
    if first:
        enqueue_on_commit(drain_webhooks)


def webhook_drain(*, max_events: int = DRAIN_MAX_EVENTS, fan_out: bool = False) -> int:
    """Apply received events oldest first, in batches, until none is left; the number applied.

    The queued flag is cleared before every look but the closing one, so a delivery committed
    after the last clear finds no flag and queues a drain of its own: nothing waits for the
    sweep. The closing look comes at least ``WEBHOOK_DRAIN_SIGNAL_WINDOW_MS`` after the last
    clear, without clearing: a delivery whose process had set the flag shortly before that clear
    sent no signal of its own, and was committed before that look. Events that waited on rows
    another worker holds are left received: when that worker is a drain, its next look takes
    them once its own batch commits; otherwise the sweep does. A batch whose
    events all belong to payments other drains are applying (their partitions) pauses briefly
    and looks again instead, so a drain does not end while the backlog lasts.

    With ``fan_out`` (the drain the endpoints queue), a first batch that came back full means a
    backlog: ``WEBHOOK_DRAIN_PARALLEL - 1`` more drains are queued to work through it side by
    side, on the worker's other processes. They never fan out themselves.
    """
    window = settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS / 1000
    applied = 0
    first = True
    pauses = 0
    isolated = False
    clear = True
    cleared_at = float("-inf")
    while applied < max_events:
        if clear:
            cache.delete(DRAIN_FLAG)
            cleared_at = time.monotonic()
        looked_at = time.monotonic()
        limit = min(DRAIN_BATCH, max_events - applied)
        outcome = _drain_batch(limit, isolated=isolated)
        count = outcome.decided
        if first and fan_out and count == limit == DRAIN_BATCH:
            _queue_parallel_drains(settings.WEBHOOK_DRAIN_PARALLEL - 1)
        first = False
        # An event that waited on a row lock stays the oldest received one: the next batch takes
        # it again, so that batch goes straight to one savepoint per event instead of timing out
        # once without and once with.
        isolated = outcome.waited_on_rows > 0
        clear = True
        if count:
            applied += count
            pauses = 0
            continue
        if outcome.held_by_drains and pauses < DRAIN_PAUSES:
            # Every event this batch took belongs to a payment another drain is applying right
            # now: that drain commits within tens of milliseconds, then they are this drain's.
            pauses += 1
            time.sleep(DRAIN_PAUSE_SECONDS)
            continue
        if looked_at - cleared_at >= window:
            break
        # An endpoint process that set the flag this drain cleared skips signalling for the
        # window after it (webhook_drain_request): one more look, at least that long after the
        # clear and without clearing, finds what it stored meanwhile.
        time.sleep(max(0.0, cleared_at + window - time.monotonic()))
        clear = False
    return applied


def _queue_parallel_drains(count: int) -> None:
    from .tasks import drain_webhooks

    for _ in range(count):
        enqueue_on_commit(drain_webhooks, fan_out=False)


def webhook_process_batch(*, limit: int = DRAIN_BATCH) -> int:
    """Apply up to ``limit`` received events, oldest first, in one transaction.

    The number given an outcome (processed, ignored or failed); events that waited too long on
    another worker's rows are left received and not counted.

    A batch is first applied without a savepoint per event, its ledger balance checked once
    before the commit: three round trips fewer per event. When anything in it goes wrong (an
    event fails, waits too long on a lock, or an entry does not balance) that whole attempt is
    rolled back, with the callbacks it registered for the commit, and the batch is applied again
    with one savepoint per event, which isolates the culprit.
    """
    return _drain_batch(limit).decided


@dataclass(frozen=True)
class _BatchOutcome:
    decided: int  # events given an outcome
    held_by_drains: int  # left received: another drain holds their partition
    waited_on_rows: int  # left received: a row they need stayed locked past the lock timeout


def _drain_batch(limit: int, *, isolated: bool = False) -> _BatchOutcome:
    if isolated:
        return _process_batch(limit=limit, isolated=True)
    try:
        return _process_batch(limit=limit, isolated=False)
    except _IsolationNeeded as exc:
        if session_ended(exc.__cause__):
            # The connection died under the attempt: nothing to isolate. The task fails and its
            # redelivery starts the batch again.
            raise exc.__cause__ or exc from None
        logger.info("webhook batch applied again event by event: %s", exc.__cause__)
        return _process_batch(limit=limit, isolated=True)


class _IsolationNeeded(Exception):
    """The optimistic attempt at a batch failed somewhere; it has been rolled back."""


def _process_batch(*, limit: int, isolated: bool) -> _BatchOutcome:
    # Called inside a caller's transaction, the batch is a savepoint: SET LOCAL would outlive it
    # (a savepoint's release keeps its settings) and give the caller's remaining statements the
    # drain's lock timeout and an asynchronous commit. The caller's values are put back then.
    nested = connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if nested:
                cursor.execute("SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')")
                previous = cursor.fetchone()
            # Without waiting for the WAL flush: a crash can only lose whole processing
            # transactions, which leaves their events "received" for the sweep to apply again.
            # Deliveries themselves are stored with a synchronous commit before the 200.
            cursor.execute(
                f"SET LOCAL synchronous_commit TO OFF; SET LOCAL lock_timeout = {int(DRAIN_LOCK_TIMEOUT_MS)}"
            )
        events = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookEventStatus.RECEIVED)
            .defer("raw_body", "headers")
            .order_by("pk")[:limit]
        )
        claimed = _claim_partitions(events)
        held_by_drains, events = len(events) - len(claimed), claimed
        if isolated:
            decided = [event for event in events if _apply(event, defer_on_lock_timeout=True)]
        else:
            decided = _apply_all(events)
        if decided:
            _save_outcomes(decided)
        if nested:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('synchronous_commit', %s, true), set_config('lock_timeout', %s, true)",
                    list(previous),
                )
    return _BatchOutcome(len(decided), held_by_drains, len(events) - len(decided))


def _claim_partitions(events: list[WebhookEvent]) -> list[WebhookEvent]:
    """The events whose partition key (``handlers.partition_key``) this transaction now holds.

    One round trip of transaction-scoped advisory try-locks: drains side by side take apart a
    backlog in which one payment's events sit in both their batches, instead of waiting on each
    other's payment rows (and, in opposite order, timing out). An event whose key another drain
    holds stays received for a later batch; the final state does not depend on the order.
    """
    keys = {event.pk: handlers.partition_key(event) for event in events}
    with prepared_cursor() as cursor:
        cursor.execute(_TRY_LOCK_KEYS, [sorted(set(keys.values())), DRAIN_LOCK_SPACE])
        held_elsewhere = {row[0] for row in cursor.fetchall()}
    return [event for event in events if keys[event.pk] not in held_elsewhere]


def _apply_all(events: list[WebhookEvent]) -> list[WebhookEvent]:
    """Apply locked events one after the other with no savepoint; raise ``_IsolationNeeded`` on any failure.

    Raised inside the batch's ``atomic`` block, the exception rolls the attempt back.
    """
    try:
        outcomes = [handlers.handle(event) for event in events]
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
    except Exception as exc:
        raise _IsolationNeeded from exc
    now = timezone.now()
    for event, applied in zip(events, outcomes, strict=True):
        event.attempts += 1
        event.status = WebhookEventStatus.PROCESSED if applied else WebhookEventStatus.IGNORED
        event.last_error, event.next_retry_at, event.processed_at = "", None, now
    return events


def _save_outcomes(events: list[WebhookEvent]) -> None:
    """The outcomes (``OUTCOME_FIELDS``) of a batch of events, in one UPDATE."""
    with prepared_cursor() as cursor:
        cursor.execute(
            "UPDATE payments_webhookevent event SET status = outcome.status, attempts = outcome.attempts,"
            " last_error = outcome.last_error, next_retry_at = outcome.next_retry_at,"
            " processed_at = outcome.processed_at, payment_id = outcome.payment_id"
            " FROM unnest(%s::bigint[], %s::varchar[], %s::integer[], %s::text[], %s::timestamptz[],"
            " %s::timestamptz[], %s::bigint[])"
            " AS outcome(id, status, attempts, last_error, next_retry_at, processed_at, payment_id)"
            " WHERE event.id = outcome.id",
            [
                [event.pk for event in events],
                [event.status for event in events],
                [event.attempts for event in events],
                [event.last_error for event in events],
                [event.next_retry_at for event in events],
                [event.processed_at for event in events],
                [event.payment_id for event in events],
            ],
        )


def webhook_process(*, event_id: int, skip_locked: bool = False) -> WebhookEvent | None:
    """Apply one event; with ``skip_locked``, None when another worker holds it right now."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        event = WebhookEvent.objects.select_for_update(skip_locked=skip_locked).filter(pk=event_id).first()
        if event is None:
            if skip_locked:
                return None
            raise WebhookEvent.DoesNotExist(f"no webhook event {event_id}")
        if event.status in DONE:
            return event
        _apply(event, defer_on_lock_timeout=False)
        event.save(update_fields=OUTCOME_FIELDS)
    return event


def retry_delay(attempts: int) -> timedelta:
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS))


def _apply(event: WebhookEvent, *, defer_on_lock_timeout: bool) -> bool:
    """Apply a locked event inside a savepoint and set its outcome on the instance (not saved).

    False when the event is left as it was: its savepoint hit the drain's lock timeout.
    """
    payment_id = event.payment_id
    try:
        with transaction.atomic():
            applied = handlers.handle(event)
            # Run the ledger's deferred balance checks now, inside the savepoint, so an
            # unbalanced entry fails this event instead of the whole commit.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
    except (DatabaseError, Exception) as exc:
        # Whatever the handler did is rolled back, including a payment it linked the event to.
        event.payment_id = payment_id
        if defer_on_lock_timeout and _is_lock_timeout(exc):
            logger.info("webhook %s (%s) waits for a row another worker holds; taken again", event.pk, event.event_type)
            return False
        event.attempts += 1
        event.status = WebhookEventStatus.FAILED
        event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        event.next_retry_at = (
            timezone.now() + retry_delay(event.attempts) if event.attempts < settings.WEBHOOK_MAX_ATTEMPTS else None
        )
        logger.warning("webhook %s (%s) failed, attempt %s: %s", event.pk, event.event_type, event.attempts, exc)
    else:
        event.attempts += 1
        event.status = WebhookEventStatus.PROCESSED if applied else WebhookEventStatus.IGNORED
        event.last_error, event.next_retry_at, event.processed_at = "", None, timezone.now()
    return True


def _is_lock_timeout(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE


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
