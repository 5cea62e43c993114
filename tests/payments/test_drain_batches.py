"""The drain applies events in batches: one transaction, a savepoint per event, one outcome each.

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
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payments.handlers.stripe as stripe_handlers
from payments import inbox
from payments.inbox import webhook_drain, webhook_process, webhook_process_batch
from payments.ledger import Line, ledger_post, ledger_unbalanced_currencies
from payments.models import JournalEntry, LedgerAccount, Payment, Posting, WebhookEvent

from .deliveries import charge, deliver_stripe, intent, stripe_event
from .test_convergence import SCENARIOS, build_stream, post, process_in_order, snapshot

pytestmark = pytest.mark.django_db(transaction=True)
_run = itertools.count()


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

    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                Payment.objects.select_for_update().get(gateway_payment_id="pi_held")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(10)
    try:
        assert webhook_process_batch(limit=10) == 1  # the free one; the held one waits
        statuses = dict(WebhookEvent.objects.values_list("object_id", "status"))
        held = WebhookEvent.objects.get(object_id="pi_held", event_type="payment_intent.succeeded")
        assert (held.status, held.attempts, held.last_error) == ("received", 0, "")
        assert statuses["pi_free"] == "processed"
    finally:
        release.set()
        thread.join(10)
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
    stream = build_stream(shuffled, kinds)
    stream += [rng.choice(stream) for _ in range(len(stream) // 3)]
    rng.shuffle(stream)
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
    # Events that met a row another drain was creating are retried, as the beat sweep would.
    for _ in range(3):
        for event_id in WebhookEvent.objects.filter(event_id__contains=shuffled, status="failed").values_list(
            "pk", flat=True
        ):
            webhook_process(event_id=event_id)

    assert not WebhookEvent.objects.filter(event_id__contains=shuffled).exclude(status="processed").exists()
    assert snapshot(shuffled) == snapshot(reference)
    assert ledger_unbalanced_currencies() == {}


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
