"""The drain applies events in batches: one transaction, one outcome each.

A batch is applied first without savepoints; when anything fails, that attempt is rolled back and
the batch applied again with a savepoint per event.

What a single event's transaction guarantees must hold per event inside a batch: a failing event
rolls back only itself and is recorded failed (attempts, error, next retry); an entry that only
the database's deferred balance trigger refuses fails that event, not the batch; a worker killed
mid-batch leaves every event of the batch received and posts nothing twice when drained again;
concurrent drains over shuffled, duplicated streams end where the in-order stream ends.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payments.handlers.stripe as stripe_handlers
from payments import handlers, inbox
from payments.inbox import webhook_drain, webhook_process, webhook_process_batch
from payments.ledger import Line, ledger_post, ledger_unbalanced_currencies
from payments.models import JournalEntry, LedgerAccount, Payment, Posting, WebhookEvent

from .deliveries import charge, deliver_stripe, dispute, intent, refund, stripe_event
from .test_convergence import SCENARIOS, assert_converged, post, process_in_order, shuffled_stream

pytestmark = pytest.mark.django_db(transaction=True)
_run = itertools.count()


@contextmanager
def payment_row_held(gateway_payment_id: str) -> Iterator[None]:
    """Another worker's transaction holds the payment's row lock until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                Payment.objects.select_for_update().get(gateway_payment_id=gateway_payment_id)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def test_a_failing_event_fails_alone_and_the_rest_of_its_batch_commits(client):
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_b1", "succeeded")))
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_bad1", "succeeded", currency="xyz")))
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_b2")))
    deliver_stripe(client, stripe_event("customer.created", {"id": "cus_b1", "object": "customer"}))

    assert webhook_process_batch(limit=10) == 4
    events = {event.object_id: event for event in WebhookEvent.objects.all()}
    failed = events["pi_bad1"]
    assert failed.status == "failed" and failed.attempts == 1
    assert "unknown currency" in failed.last_error and failed.next_retry_at is not None
    assert failed.payment_id is None and failed.processed_at is None
    for object_id in ("pi_b1", "ch_b2"):
        done = events[object_id]
        assert (done.status, done.attempts, done.last_error, done.next_retry_at) == ("processed", 1, "", None)
        assert done.processed_at is not None and done.payment_id is not None
    assert events["cus_b1"].status == "ignored"
    assert set(Payment.objects.values_list("gateway_payment_id", flat=True)) == {"pi_b1", "pi_b2"}
    assert Payment.objects.get(gateway_payment_id="pi_b2").fee_minor == 88
    assert ledger_unbalanced_currencies() == {}
    # A failed event is not taken by the drain again: its retry is the sweep's.
    assert webhook_drain() == 0


def test_an_entry_refused_by_the_deferred_trigger_fails_only_its_event(client, monkeypatch):
    def unbalanced(event, obj):
        # Bypasses ledger_post's own check: only the database's deferred trigger can refuse it.
        account = LedgerAccount.objects.get_or_create(kind="fees", gateway="stripe", currency="USD")[0]
        entry = JournalEntry.objects.create(
            idempotency_key=f"raw:{obj['id']}", description="x", occurred_at=timezone.now()
        )
        Posting.objects.create(entry=entry, account=account, currency="USD", amount_minor=100)
        Posting.objects.create(entry=entry, account=account, currency="USD", amount_minor=-90)

    monkeypatch.setitem(stripe_handlers.HANDLERS, "test.unbalanced", unbalanced)
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_t1")))
    deliver_stripe(client, stripe_event("test.unbalanced", {"id": "obj_1"}))
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_t2")))

    assert webhook_drain() == 3
    statuses = dict(WebhookEvent.objects.values_list("object_id", "status"))
    assert statuses == {"ch_t1": "processed", "obj_1": "failed", "ch_t2": "processed"}
    assert "does not balance" in WebhookEvent.objects.get(object_id="obj_1").last_error
    assert not JournalEntry.objects.filter(idempotency_key__startswith="raw:").exists()
    assert JournalEntry.objects.count() == 4  # two captures and two fees
    assert ledger_unbalanced_currencies() == {}


def test_a_worker_killed_mid_batch_leaves_the_batch_received_and_posts_once(client, monkeypatch):
    for n in range(3):
        deliver_stripe(client, stripe_event("charge.succeeded", charge(f"pi_kill{n}")))

    import payments.services as services

    posted, resume = threading.Event(), threading.Event()
    original = services.ledger_post
    backend_pid: list[int] = []

    def pausing_post(**kwargs):
        entry = original(**kwargs)
        if "pi_kill1" in kwargs["key"] and not posted.is_set():
            backend_pid.append(connection.connection.info.backend_pid)
            posted.set()
            resume.wait(10)
        return entry

    def worker() -> None:
        try:
            webhook_drain()
        except Exception:  # noqa: S110 - the killed worker's error is the point of the test
            pass
        finally:
            connection.close()

    monkeypatch.setattr(services, "ledger_post", pausing_post)
    thread = threading.Thread(target=worker)
    thread.start()
    assert posted.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid[0]])
    resume.set()
    thread.join(10)
    monkeypatch.setattr(services, "ledger_post", original)

    # The first event of the batch was applied, the second half-way: the whole batch rolled back.
    assert JournalEntry.objects.count() == 0 and Payment.objects.count() == 0
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("received", 0)}
    assert webhook_drain() == 3  # the redelivered drain
    assert webhook_drain() == 0
    for n in range(3):
        assert webhook_process(event_id=WebhookEvent.objects.get(object_id=f"ch_kill{n}").pk).status == "processed"
    assert JournalEntry.objects.count() == 6 and ledger_unbalanced_currencies() == {}


def test_an_event_whose_rows_another_worker_holds_stays_received_for_the_next_batch(client, monkeypatch):
    monkeypatch.setattr(inbox, "DRAIN_LOCK_TIMEOUT_MS", 50)
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_held", "requires_payment_method")))
    webhook_drain()
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_held", "succeeded")))
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_free", "requires_payment_method")))

    with payment_row_held("pi_held"):
        assert webhook_process_batch(limit=10) == 1  # the free one; the held one waits
        statuses = dict(WebhookEvent.objects.values_list("object_id", "status"))
        held = WebhookEvent.objects.get(object_id="pi_held", event_type="payment_intent.succeeded")
        assert (held.status, held.attempts, held.last_error) == ("received", 0, "")
        assert statuses["pi_free"] == "processed"
    assert webhook_drain() == 1
    assert Payment.objects.get(gateway_payment_id="pi_held").status == "succeeded"
    assert not WebhookEvent.objects.exclude(status="processed").exists()


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    kinds=st.lists(st.sampled_from(SCENARIOS), min_size=3, max_size=6),
    seed=st.integers(0, 2**32),
    drains=st.integers(2, 3),
    batch=st.integers(2, 8),
)
def test_concurrent_drains_of_shuffled_duplicated_streams_converge(kinds, seed, drains, batch):
    run = next(_run)
    reference, shuffled = f"dr{run}t{seed % 10000}", f"ds{run}t{seed % 10000}"
    process_in_order(reference, kinds)

    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    stream = shuffled_stream(shuffled, kinds, rng, 1 / 3)
    for event in stream:
        assert post(event) == 200

    def drain(_: int) -> int:
        try:
            return webhook_drain()
        finally:
            connection.close()

    original_batch = inbox.DRAIN_BATCH
    inbox.DRAIN_BATCH = batch  # small batches: several transactions per drain, interleaved
    try:
        with ThreadPoolExecutor(max_workers=drains) as pool:
            list(pool.map(drain, range(drains)))
    finally:
        inbox.DRAIN_BATCH = original_batch
    assert_converged(shuffled, reference)


def test_postings_are_inserted_all_or_none_when_some_accounts_are_new():
    from django.db import transaction

    LedgerAccount.objects.create(kind="fees", gateway="braintree", currency="EUR")
    with transaction.atomic():
        entry = ledger_post(
            key="mixed-accounts",
            description="a fee and a clearing account that does not exist yet",
            occurred_at=timezone.now(),
            gateway="braintree",
            currency="EUR",
            lines=[Line(LedgerAccount.Kind.FEES, 70), Line(LedgerAccount.Kind.GATEWAY_CLEARING, -70)],
        )
    postings = sorted(
        Posting.objects.filter(entry_id=entry.pk).values_list("account__kind", "currency", "amount_minor")
    )
    assert postings == [("fees", "EUR", 70), ("gateway_clearing", "EUR", -70)]
    assert LedgerAccount.objects.filter(gateway="braintree", currency="EUR").count() == 2
    assert json.dumps(ledger_unbalanced_currencies()) == "{}"


def test_a_batch_inside_a_callers_transaction_leaves_the_callers_settings_as_they_were(client):
    from django.db import transaction

    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_nested1")))

    def current() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout'), current_setting('synchronous_commit')")
            return cursor.fetchone()

    with transaction.atomic():
        before = current()
        assert webhook_process_batch(limit=10) == 1
        # The caller's remaining statements neither give up on locks after 200 ms nor commit
        # without waiting for the WAL flush.
        assert current() == before
    assert WebhookEvent.objects.get().status == "processed"


screened_calls: list[dict] = []


def record_screening(**kwargs) -> None:
    screened_calls.append(kwargs)


def test_a_batch_applied_again_event_by_event_runs_each_commit_callback_once(client, settings):
    """The first attempt at a batch (no savepoints) is rolled back when an event fails: what it
    registered for the commit (here the payer's screening) is dropped with it, and the second
    attempt registers it once."""
    settings.COUNTERPARTY_SCREENING_HOOK = f"{__name__}.record_screening"
    screened_calls.clear()
    billing = {"email": "ana@example.com", "name": "Ana Lima", "address": {"country": "br"}}
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_cb1", billing_details=billing)))
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_cb_bad", "succeeded", currency="xyz")))

    assert webhook_process_batch(limit=10) == 2
    payment = Payment.objects.get(gateway_payment_id="pi_cb1")
    assert screened_calls == [
        {"name": "Ana Lima", "country": "BR", "source_type": "payments.payment", "source_id": payment.pk}
    ]
    assert dict(WebhookEvent.objects.values_list("object_id", "status")) == {
        "ch_cb1": "processed",
        "pi_cb_bad": "failed",
    }
    assert JournalEntry.objects.filter(payment=payment).count() == 2  # capture and fee, once
    screened_calls.clear()


def hold_partition(key: str) -> psycopg.Connection:
    """A second session whose open transaction holds a drain partition lock on ``key``."""
    other = psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        host=connection.settings_dict["HOST"],
        port=connection.settings_dict["PORT"] or 5432,
        user=connection.settings_dict["USER"],
    )
    other.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [inbox.DRAIN_LOCK_SPACE, key])
    return other


def test_an_event_whose_payment_another_drain_holds_is_left_for_a_later_batch(client):
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_part1")))
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_part2", "succeeded")))
    first = WebhookEvent.objects.get(object_id="ch_part1")
    assert handlers.partition_key(first) == "stripe:pi_part1"

    other = hold_partition("stripe:pi_part1")  # as another drain's transaction does
    try:
        assert webhook_process_batch(limit=10) == 1
        held = WebhookEvent.objects.get(pk=first.pk)
        assert (held.status, held.attempts, held.last_error) == ("received", 0, "")
        assert not Payment.objects.filter(gateway_payment_id="pi_part1").exists()
        assert Payment.objects.get(gateway_payment_id="pi_part2").status == "succeeded"
    finally:
        other.rollback()
        other.close()
    assert webhook_drain() == 1
    assert Payment.objects.get(gateway_payment_id="pi_part1").status == "succeeded"


def test_partition_keys_name_the_payment_an_event_concerns(client):
    deliveries = [
        stripe_event("payment_intent.created", intent("pi_key", "requires_payment_method")),
        stripe_event("charge.succeeded", charge("pi_key")),
        stripe_event("charge.refund.updated", refund("pi_key", "re_key", 500)),
        stripe_event("charge.dispute.created", dispute("pi_key", "dp_key", "needs_response")),
        stripe_event("charge.succeeded", {**charge("pi_x"), "id": "ch_alone", "payment_intent": None}),
        stripe_event("payout.paid", {"id": "po_key", "object": "payout", "amount": 100, "currency": "usd"}),
    ]
    for event in deliveries:
        deliver_stripe(client, event)
    keys = {event.object_id: handlers.partition_key(event) for event in WebhookEvent.objects.all()}
    assert keys == {
        "pi_key": "stripe:pi_key",
        "ch_key": "stripe:pi_key",
        "re_key": "stripe:pi_key",
        "dp_key": "stripe:pi_key",
        "ch_alone": "stripe:ch_alone",
        "po_key": "stripe:po_key",
    }
    odd = WebhookEvent(provider="stripe", object_id="obj_odd", payload={"data": ["not", "an", "object"]})
    assert handlers.partition_key(odd) == "stripe:obj_odd"
    assert handlers.partition_key(WebhookEvent(provider="braintree", object_id="txn1", payload={})) == "braintree:txn1"


def test_a_backlog_fans_out_to_parallel_drains_and_only_the_first_drain_does(client, monkeypatch, settings):
    from payments.tasks import drain_webhooks

    settings.WEBHOOK_DRAIN_PARALLEL = 3
    monkeypatch.setattr(inbox, "DRAIN_BATCH", 3)
    sent: list[dict] = []
    monkeypatch.setattr(drain_webhooks, "apply_async", lambda args=(), kwargs=None, **options: sent.append(kwargs))
    for n in range(4):
        deliver_stripe(client, stripe_event("payment_intent.created", intent(f"pi_fan{n}", "requires_payment_method")))
    sent.clear()

    assert webhook_drain(fan_out=True) == 4  # a full first batch: a backlog
    assert sent == [{"fan_out": False}, {"fan_out": False}]

    sent.clear()
    for n in range(4, 8):
        deliver_stripe(client, stripe_event("payment_intent.created", intent(f"pi_fan{n}", "requires_payment_method")))
    sent.clear()
    assert webhook_drain(fan_out=False) == 4  # a queued sibling never fans out
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_fan8", "requires_payment_method")))
    sent.clear()
    assert webhook_drain(fan_out=True) == 1  # no backlog
    assert sent == []


def test_a_drain_waits_for_partitions_another_drain_holds_instead_of_ending(client, monkeypatch):
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_wait1", "succeeded")))
    other = hold_partition("stripe:pi_wait1")
    try:
        # Held longer than the drain waits: it ends, the event still received.
        monkeypatch.setattr(inbox, "DRAIN_PAUSES", 2)
        assert webhook_drain() == 0
        assert WebhookEvent.objects.get().status == "received"
        # Released while the drain waits: it takes the event.
        monkeypatch.setattr(inbox, "DRAIN_PAUSES", 200)
        threading.Timer(0.3, other.rollback).start()
        assert webhook_drain() == 1
    finally:
        other.close()
    assert Payment.objects.get(gateway_payment_id="pi_wait1").status == "succeeded"


def test_after_an_event_waited_on_a_row_the_next_batch_goes_straight_to_savepoints(client, monkeypatch):
    """The waiting event stays the oldest and comes back in the next batch: that batch is not
    attempted without savepoints first (which would wait on the same row twice)."""
    monkeypatch.setattr(inbox, "DRAIN_LOCK_TIMEOUT_MS", 50)
    monkeypatch.setattr(inbox, "DRAIN_BATCH", 2)
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_row1", "requires_payment_method")))
    webhook_drain()
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_row1", "succeeded")))
    for n in range(3):
        deliver_stripe(
            client, stripe_event("payment_intent.created", intent(f"pi_row_free{n}", "requires_payment_method"))
        )
    retried: list[str] = []
    monkeypatch.setattr(inbox.logger, "info", lambda message, *args: retried.append(message))

    with payment_row_held("pi_row1"):
        assert webhook_drain() == 3  # the three free ones, over two batches; the held one waits
    assert retried.count("webhook batch applied again event by event: %s") == 1
    assert webhook_drain() == 1
    assert not WebhookEvent.objects.exclude(status="processed").exists()
