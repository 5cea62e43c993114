"""Replay of stored events, and the dunning of failed payments."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from fintech.core.models import AuditEvent
from payments.dunning import dunning_due_plan_ids, dunning_retry
from payments.inbox import webhook_process, webhook_replay, webhook_sweep
from payments.models import CustomerNotification, DunningPlan, Payment, WebhookEvent

from .deliveries import braintree_sample, deliver_braintree, deliver_stripe, intent, stripe_event

pytestmark = pytest.mark.django_db


def replay(*args: str) -> str:
    out = StringIO()
    call_command("replay_webhooks", *args, stdout=out)
    return out.getvalue()


def test_replay_runs_failed_events_and_leaves_processed_ones_alone(client, settings):
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_rp1", "succeeded", currency="xyz")))
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_rp2", "succeeded")))
    for event in WebhookEvent.objects.all():
        webhook_process(event_id=event.pk)
    failed = WebhookEvent.objects.get(status="failed")
    processed = WebhookEvent.objects.get(status="processed")

    output = replay("--failed")
    assert "1 selected" in output and "1 failed" in output
    failed.refresh_from_db()
    assert failed.attempts == 2
    assert AuditEvent.objects.filter(action="webhook.replayed", target_id=str(failed.pk)).exists()

    before = processed.processed_at
    output = replay("--id", str(processed.pk))
    processed.refresh_from_db()
    assert "1 already processed or ignored" in output and processed.processed_at == before
    assert webhook_replay(event=processed, actor=None).requeued is False


def test_replay_by_type_and_since_and_bad_arguments(client):
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_rp3", "requires_payment_method")))
    output = replay("--type", "payment_intent.created", "--since", "2000-01-01T00:00:00Z")
    assert "1 selected" in output and "1 processed" in output
    assert Payment.objects.get().gateway_payment_id == "pi_rp3"
    with pytest.raises(CommandError, match="say which events"):
        replay()
    with pytest.raises(CommandError, match="no webhook event with id 999"):
        replay("--id", "999")
    with pytest.raises(CommandError, match="ISO 8601"):
        replay("--since", "yesterday")


def test_sweep_requeues_due_failures_and_lost_deliveries(client, settings):
    settings.WEBHOOK_STALE_SECONDS = 0
    deliver_stripe(client, stripe_event("payment_intent.created", intent("pi_sw1", "requires_payment_method")))
    assert webhook_sweep() == 1  # received with no outcome: its task may have been lost


def test_failed_braintree_sale_runs_its_dunning_plan_to_the_end(client, settings):
    settings.PAYMENTS_DUNNING_RETRY_HOURS = [1, 2]
    deliver_braintree(client, braintree_sample("transaction_settlement_declined", "bt_dun1"))
    webhook_process(event_id=WebhookEvent.objects.get().pk)
    plan = DunningPlan.objects.get()
    assert plan.status == "active" and dunning_due_plan_ids() == []

    for attempt in (1, 2):
        DunningPlan.objects.filter(pk=plan.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        assert dunning_due_plan_ids() == [plan.pk]
        # A one-off Braintree sale cannot be charged again without a stored payment method.
        plan = dunning_retry(plan_id=plan.pk)
        assert plan.attempts == attempt and plan.last_failure_code == "not_retryable"
    assert plan.status == "exhausted" and plan.next_attempt_at is None
    kinds = list(CustomerNotification.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["payment_failed", "retry_scheduled", "retry_scheduled", "final_notice"]
    assert Payment.objects.get().status == "failed"


def test_a_later_success_recovers_the_plan(client):
    error = {"decline_code": "card_declined", "message": "declined"}
    now = int(timezone.now().timestamp())
    deliver_stripe(
        client,
        stripe_event(
            "payment_intent.payment_failed",
            intent("pi_dun2", "requires_payment_method", last_payment_error=error),
            created=now,
        ),
    )
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_dun2", "succeeded"), created=now + 60))
    for event in WebhookEvent.objects.order_by("pk"):
        webhook_process(event_id=event.pk)
    assert DunningPlan.objects.get().status == "recovered"
    assert CustomerNotification.objects.filter(kind="payment_recovered").count() == 1


def test_a_failure_without_a_code_has_a_failure_time_and_its_plan_is_still_recovered():
    from payments.services import PaymentFacts, payment_apply_facts

    failed_at = timezone.now() - timedelta(minutes=5)
    facts = {"gateway": "stripe", "gateway_payment_id": "pi_dun_nocode", "currency": "USD", "amount_minor": 900}
    payment_apply_facts(facts=PaymentFacts(**facts, occurred_at=failed_at, status="failed"))
    payment = Payment.objects.get(gateway_payment_id="pi_dun_nocode")
    assert (payment.status, payment.failure_code, payment.failed_at) == ("failed", "", failed_at)
    assert DunningPlan.objects.get(payment=payment).status == "active"

    payment_apply_facts(facts=PaymentFacts(**facts, occurred_at=timezone.now(), status="succeeded"))
    assert DunningPlan.objects.get(payment=payment).status == "recovered"


def test_a_payment_that_never_failed_gets_no_plan_on_success(client):
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_dun_ok", "succeeded")))
    for event in WebhookEvent.objects.order_by("pk"):
        webhook_process(event_id=event.pk)
    assert Payment.objects.get(gateway_payment_id="pi_dun_ok").failed_at is None
    assert not DunningPlan.objects.exists() and not CustomerNotification.objects.exists()


def test_deliveries_queue_one_coalesced_drain_that_applies_them_all(client):
    from django.core.cache import cache

    from payments.inbox import DRAIN_FLAG, webhook_drain

    cache.delete(DRAIN_FLAG)
    for n in range(3):
        deliver_stripe(client, stripe_event("payment_intent.succeeded", intent(f"pi_drain{n}", "succeeded")))
    assert cache.get(DRAIN_FLAG) == 1  # one drain queued for the burst
    assert webhook_drain() == 3
    assert cache.get(DRAIN_FLAG) is None  # the next delivery queues a drain of its own
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Payment.objects.filter(status="succeeded").count() == 3


def test_the_failure_time_backfill_covers_failed_payments_and_those_with_a_plan():
    import importlib

    from django.apps import apps

    backfill = importlib.import_module("payments.migrations.0008_backfill_failed_at").backfill
    at = timezone.now() - timedelta(days=3)

    def payment(reference: str, status: str, **fields) -> Payment:
        return Payment.objects.create(
            gateway="stripe", gateway_payment_id=reference, currency="USD", amount_minor=500, status=status, **fields
        )

    failed = payment("pi_bf1", "failed", status_event_at=at)
    recovered = payment("pi_bf2", "succeeded", status_event_at=at)
    DunningPlan.objects.create(payment=recovered, status="active")
    never_failed = payment("pi_bf3", "succeeded", status_event_at=at)
    backfill(apps, None)
    failed_at = dict(Payment.objects.values_list("gateway_payment_id", "failed_at"))
    assert failed_at == {"pi_bf1": at, "pi_bf2": at, "pi_bf3": None}
    assert {failed.pk, recovered.pk, never_failed.pk} == set(Payment.objects.values_list("pk", flat=True))
