"""Payments tasks: thin, they fetch by id and call a service."""

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from fintech.core.celery_base import FintechTask, TransientError
from fintech.core.queue import enqueue_on_commit

from .dunning import dunning_due_plan_ids, dunning_retry
from .gateways import GatewayError
from .inbox import DRAIN_MAX_EVENTS, webhook_drain, webhook_process, webhook_sweep
from .models import Payment

logger = logging.getLogger("fintech.payments.tasks")


@shared_task(name="payments.process_webhook_event", base=FintechTask, ignore_result=True)
def process_webhook_event(event_id: int) -> None:
    webhook_process(event_id=event_id)


@shared_task(name="payments.drain_webhooks", base=FintechTask, ignore_result=True)
def drain_webhooks(*, fan_out: bool = True) -> None:
    """Queued (coalesced) by the webhook endpoints: applies every received event.

    A backlog fans out to ``WEBHOOK_DRAIN_PARALLEL`` drains (the queued ones get ``fan_out=False``).
    A drain that stopped at ``DRAIN_MAX_EVENTS`` queues the next, which goes on with the backlog
    and makes the closing look this one did not.
    """
    if webhook_drain(max_events=DRAIN_MAX_EVENTS, fan_out=fan_out) >= DRAIN_MAX_EVENTS:
        enqueue_on_commit(drain_webhooks, fan_out=False)


@shared_task(name="payments.sweep_webhooks", base=FintechTask)
def sweep_webhooks() -> int:
    return webhook_sweep()


@shared_task(name="payments.fetch_stripe_fee", base=FintechTask, ignore_result=True)
def fetch_stripe_fee(payment_id: int, balance_transaction_id: str) -> None:
    """Stripe reports a charge's fee on its balance transaction, fetched once the charge succeeded."""
    from .gateways.stripe import retrieve_balance_transaction
    from .services import payment_record_fee

    try:
        balance_transaction = retrieve_balance_transaction(balance_transaction_id)
    except GatewayError as exc:
        if exc.retryable:
            raise TransientError(str(exc)) from exc
        raise
    fee = int(balance_transaction.get("fee") or 0)
    if not fee:
        return
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        payment_record_fee(payment=payment, fee_minor=fee, reference=balance_transaction_id, occurred_at=timezone.now())


@shared_task(name="payments.run_dunning", base=FintechTask)
def run_dunning() -> int:
    plan_ids = dunning_due_plan_ids()
    for plan_id in plan_ids:
        dunning_retry(plan_id=plan_id)
    return len(plan_ids)


@shared_task(name="payments.purge_idempotency_records", base=FintechTask)
def purge_idempotency_records() -> int:
    """Daily: forgets merchant API Idempotency-Keys older than API_IDEMPOTENCY_TTL_HOURS."""
    from .checkout import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(name="payments.resolve_pending_refunds", base=FintechTask)
def resolve_pending_refunds() -> int:
    """Settles Braintree refunds and voids left pending by a lost answer (no notification follows)."""
    from .checkout import checkout_pending_refund_ids, checkout_refund_resolve

    refund_ids = checkout_pending_refund_ids()
    for refund_id in refund_ids:
        try:
            checkout_refund_resolve(refund_id=refund_id)
        except Exception:
            # One refund that cannot be settled must not hold up the others.
            logger.exception("could not resolve pending refund %s", refund_id)
    return len(refund_ids)
