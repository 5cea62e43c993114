"""Shuffled, duplicated, concurrent deliveries converge on the same state and a ledger posted once.

Each example builds event streams for several payments, applies them once in gateway order
(the reference) and once shuffled with duplicates, delivered and processed by concurrent
threads through the real endpoint, under other ids. Both must end in the same statuses,
amounts and ledger totals, and the ledger must balance.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.inbox import webhook_process
from payments.ledger import ledger_unbalanced_currencies
from payments.models import Dispute, JournalEntry, Payment, Payout, Posting, Refund, WebhookEvent

from .deliveries import charge, dispute, intent, payout, refund, stripe_event, stripe_signature

SCENARIOS = [
    "success",
    "decline_then_success",
    "decline",
    "refund_partial",
    "refund_failed",
    "dispute_won",
    "dispute_lost",
    "canceled",
]
_run = itertools.count()


def scenario_events(kind: str, pi: str, t0: int) -> list[tuple[str, dict, int]]:
    """(type, object, created) in the order the gateway produced them."""
    ok = [
        ("payment_intent.created", intent(pi, "requires_payment_method"), t0),
        ("payment_intent.processing", intent(pi, "processing"), t0 + 1),
        ("charge.succeeded", charge(pi), t0 + 2),
        ("payment_intent.succeeded", intent(pi, "succeeded"), t0 + 2),
    ]
    error = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Insufficient funds."}
    failed = ("payment_intent.payment_failed", intent(pi, "requires_payment_method", last_payment_error=error), t0 + 1)
    if kind == "success":
        return ok
    if kind == "decline":
        return [ok[0], failed]
    if kind == "decline_then_success":
        return [ok[0], failed, *[(t, o, c + 5) for t, o, c in ok[1:]]]
    if kind == "canceled":
        return [ok[0], ("payment_intent.canceled", intent(pi, "canceled"), t0 + 3)]
    if kind == "refund_partial":
        return [*ok, ("charge.refund.updated", refund(pi, f"re_{pi}", 700), t0 + 4)]
    if kind == "refund_failed":
        return [
            *ok,
            ("charge.refund.updated", refund(pi, f"re_{pi}", 700, "pending"), t0 + 4),
            ("charge.refund.updated", refund(pi, f"re_{pi}", 700, "succeeded"), t0 + 5),
            ("charge.refund.updated", refund(pi, f"re_{pi}", 700, "failed"), t0 + 6),
        ]
    outcome = "won" if kind == "dispute_won" else "lost"
    events = [
        *ok,
        ("charge.dispute.created", dispute(pi, f"dp_{pi}", "needs_response"), t0 + 10),
        (
            "charge.dispute.funds_withdrawn",
            dispute(pi, f"dp_{pi}", "needs_response", balance_transactions=[{"amount": -2000, "fee": 1500}]),
            t0 + 10,
        ),
        ("charge.dispute.updated", dispute(pi, f"dp_{pi}", "under_review"), t0 + 11),
        ("charge.dispute.closed", dispute(pi, f"dp_{pi}", outcome), t0 + 12),
    ]
    if outcome == "won":
        events.append(
            (
                "charge.dispute.funds_reinstated",
                dispute(pi, f"dp_{pi}", "won", balance_transactions=[{"amount": 2000, "fee": 0}]),
                t0 + 12,
            )
        )
    return events


def build_stream(prefix: str, kinds: list[str]) -> list[dict]:
    t0 = int(time.time()) - 3600
    stream = []
    for index, kind in enumerate(kinds):
        for n, (event_type, obj, created) in enumerate(scenario_events(kind, f"pi_{prefix}x{index}", t0)):
            stream.append(stripe_event(event_type, obj, created=created, event_id=f"evt_{prefix}x{index}x{n}"))
    stream.append(
        stripe_event("payout.paid", payout(f"po_{prefix}", "paid"), created=t0 + 20, event_id=f"evt_{prefix}po1")
    )
    stream.append(
        stripe_event("payout.failed", payout(f"po_{prefix}", "failed"), created=t0 + 30, event_id=f"evt_{prefix}po2")
    )
    return stream


def shuffled_stream(prefix: str, kinds: list[str], rng: random.Random, duplicate_share: float) -> list[dict]:
    """``build_stream`` with a share of its events delivered again, all in a random order."""
    stream = build_stream(prefix, kinds)
    stream += [rng.choice(stream) for _ in range(int(len(stream) * duplicate_share))]
    rng.shuffle(stream)
    return stream


def assert_converged(shuffled: str, reference: str) -> None:
    """Every event of ``shuffled`` processed on its first attempt (concurrency never fails one),
    ending where the in-order ``reference`` ended, with a balanced ledger."""
    failed = WebhookEvent.objects.filter(event_id__contains=shuffled, status="failed")
    assert dict(failed.values_list("event_id", "last_error")) == {}
    assert not WebhookEvent.objects.filter(event_id__contains=shuffled).exclude(status="processed").exists()
    assert snapshot(shuffled) == snapshot(reference)
    assert ledger_unbalanced_currencies() == {}


def post(event: dict) -> int:
    body = json.dumps(event)
    response = Client().post(
        "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=stripe_signature(body)
    )
    return response.status_code


def snapshot(prefix: str) -> dict:
    """Everything that must converge, with this run's prefix taken out of the ids."""

    def strip(value: str) -> str:
        return value.replace(prefix, "P")

    payments = {
        strip(p.gateway_payment_id): (
            p.status,
            p.amount_captured_minor,
            p.amount_refunded_minor,
            p.fee_minor,
            p.failure_code,
        )
        for p in Payment.objects.filter(gateway_payment_id__contains=prefix)
    }
    refunds = {strip(r.gateway_refund_id): r.status for r in Refund.objects.filter(gateway_refund_id__contains=prefix)}
    disputes = {
        strip(d.gateway_dispute_id): (d.status, d.funds_withdrawn_minor, d.funds_reinstated_minor)
        for d in Dispute.objects.filter(gateway_dispute_id__contains=prefix)
    }
    payouts = {strip(p.gateway_payout_id): p.status for p in Payout.objects.filter(gateway_payout_id__contains=prefix)}
    totals: dict[str, int] = defaultdict(int)
    for row in (
        Posting.objects.filter(entry__idempotency_key__contains=prefix)
        .values("account__kind")
        .annotate(total=Sum("amount_minor"))
    ):
        totals[row["account__kind"]] += row["total"]
    keys = {
        strip(k)
        for k in JournalEntry.objects.filter(idempotency_key__contains=prefix).values_list("idempotency_key", flat=True)
    }
    # An effect posted and later reversed (a payout paid, then failed) nets to nothing; seen in
    # the other order it is never posted. Both leave the same standing effects and balances.
    standing = sorted(k for k in keys if not k.endswith(":reversed") and f"{k}:reversed" not in keys)
    balances = {kind: total for kind, total in totals.items() if total}
    return {
        "payments": payments,
        "refunds": refunds,
        "disputes": disputes,
        "payouts": payouts,
        "ledger": balances,
        "effects": standing,
    }


def process_concurrently(event_ids: list[int], workers: int) -> None:
    def work(event_id: int) -> None:
        try:
            webhook_process(event_id=event_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, event_ids))


def process_in_order(reference: str, kinds) -> None:
    """The reference run: each event once, in gateway order, processed one by one."""
    for event in build_stream(reference, kinds):
        assert post(event) == 200
    for event_id in (
        WebhookEvent.objects.filter(event_id__contains=reference).order_by("pk").values_list("pk", flat=True)
    ):
        webhook_process(event_id=event_id)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    kinds=st.lists(st.sampled_from(SCENARIOS), min_size=2, max_size=5),
    seed=st.integers(0, 2**32),
    duplicate_share=st.floats(0, 0.6),
    threads=st.integers(2, 4),
)
def test_shuffled_duplicated_concurrent_streams_converge(kinds, seed, duplicate_share, threads):
    run = next(_run)
    reference, shuffled = f"r{run}t{seed % 10000}", f"s{run}t{seed % 10000}"

    process_in_order(reference, kinds)

    # Under test: shuffled, with duplicates, delivered and processed by concurrent threads; every
    # delivery is also processed twice (a redelivered task).
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    stream = shuffled_stream(shuffled, kinds, rng, duplicate_share)

    def deliver(event: dict) -> int:
        try:
            return post(event)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        assert set(pool.map(deliver, stream)) == {200}
    stored = list(WebhookEvent.objects.filter(event_id__contains=shuffled).values_list("pk", flat=True))
    rng.shuffle(stored)
    process_concurrently(stored + stored[: len(stored) // 2], threads)
    assert_converged(shuffled, reference)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_processing_does_not_double_post(client):
    """The worker's connection dies after it posted to the ledger, before commit; the task is redelivered."""
    event = stripe_event("charge.succeeded", charge("pi_killed1"))
    body = json.dumps(event)
    client.post(
        "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=stripe_signature(body)
    )
    stored = WebhookEvent.objects.get()

    import payments.ledger as ledger

    posted, resume = threading.Event(), threading.Event()
    original = ledger.ledger_post
    backend_pid: list[int] = []

    def pausing_post(**kwargs):
        entry = original(**kwargs)
        backend_pid.append(connection.connection.info.backend_pid)
        posted.set()
        resume.wait(10)
        return entry

    def worker() -> None:
        try:
            webhook_process(event_id=stored.pk)
        except Exception:  # noqa: S110 - the killed worker's error is the point of the test
            pass
        finally:
            connection.close()

    import payments.services as services

    services.ledger_post = pausing_post
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        assert posted.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid[0]])
        resume.set()
        thread.join(10)
    finally:
        services.ledger_post = original

    assert JournalEntry.objects.count() == 0  # the killed transaction left nothing
    stored.refresh_from_db()
    assert stored.status == "received"
    webhook_process(event_id=stored.pk)  # the redelivered task
    webhook_process(event_id=stored.pk)  # and a duplicate of it
    assert JournalEntry.objects.filter(idempotency_key="stripe:payment:pi_killed1:captured").count() == 1
    assert Payment.objects.get().status == "succeeded"
    assert ledger_unbalanced_currencies() == {}
