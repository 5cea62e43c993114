"""Dunning: a failed payment is retried on a schedule, the payer is told, and the plan ends.

A plan starts when a payment turns failed (its decline code is on the payment and the plan).
Celery beat runs ``payments.run_dunning`` every minute: each due plan retries the payment through
its gateway, then either waits for the gateway's webhook (a success recovers the plan) or, after
the last retry in ``PAYMENTS_DUNNING_RETRY_HOURS``, ends exhausted with a final notice. Every
step is recorded as a CustomerNotification, once (unique dedupe key).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import (
    CustomerNotification,
    DunningPlan,
    DunningPlanStatus,
    Payment,
    PaymentStatus,
)

logger = logging.getLogger("fintech.payments.dunning")


def retry_schedule() -> list[timedelta]:
    return [timedelta(hours=hours) for hours in settings.PAYMENTS_DUNNING_RETRY_HOURS]


def _notify(payment: Payment, kind: str, step: int) -> None:
    recipient = payment.email or (payment.customer.email if payment.customer_id and payment.customer else "")
    CustomerNotification.objects.bulk_create(
        [
            CustomerNotification(
                payment=payment, kind=kind, recipient=recipient, dedupe_key=f"{payment.pk}:{kind}:{step}"
            )
        ],
        ignore_conflicts=True,
    )


def payment_status_changed(*, payment: Payment, previous_status: str) -> None:
    """Called by the payment services inside their transaction, with the payment row locked."""
    if payment.status != PaymentStatus.FAILED and payment.failed_at is None:
        # A plan is only ever created when a payment fails, and a payment that failed has a
        # failure time (payment_apply_facts): one that never failed has no plan to look for.
        return
    plan = DunningPlan.objects.select_for_update().filter(payment=payment).first()
    if payment.status == PaymentStatus.FAILED and plan is None:
        schedule = retry_schedule()
        plan = DunningPlan.objects.create(
            payment=payment,
            last_failure_code=payment.failure_code,
            next_attempt_at=timezone.now() + schedule[0] if schedule else None,
            status=DunningPlanStatus.ACTIVE if schedule else DunningPlanStatus.EXHAUSTED,
        )
        _notify(payment, CustomerNotification.Kind.PAYMENT_FAILED, 0)
        if schedule:
            _notify(payment, CustomerNotification.Kind.RETRY_SCHEDULED, 0)
    elif payment.status == PaymentStatus.SUCCEEDED and plan is not None and plan.status == DunningPlanStatus.ACTIVE:
        plan.status, plan.next_attempt_at, plan.updated_at = DunningPlanStatus.RECOVERED, None, timezone.now()
        plan.save(update_fields=["status", "next_attempt_at", "updated_at"])
        _notify(payment, CustomerNotification.Kind.PAYMENT_RECOVERED, plan.attempts)
    elif payment.status == PaymentStatus.CANCELED and plan is not None and plan.status == DunningPlanStatus.ACTIVE:
        plan.status, plan.next_attempt_at, plan.updated_at = DunningPlanStatus.CANCELED, None, timezone.now()
        plan.save(update_fields=["status", "next_attempt_at", "updated_at"])


def dunning_due_plan_ids(limit: int = 100) -> list[int]:
    return list(
        DunningPlan.objects.filter(status=DunningPlanStatus.ACTIVE, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def dunning_retry(*, plan_id: int) -> DunningPlan:
    """Make one retry of a due plan: claim it, call the gateway outside the transaction, record the outcome."""
    from .gateways import GatewayError, retry_payment

    schedule = retry_schedule()
    with transaction.atomic():
        plan = DunningPlan.objects.select_for_update().select_related("payment").get(pk=plan_id)
        if plan.status != DunningPlanStatus.ACTIVE or not plan.next_attempt_at or plan.next_attempt_at > timezone.now():
            return plan
        plan.attempts += 1
        plan.last_attempt_at = timezone.now()
        # Claimed: another beat tick will not retry it while the gateway call is in flight.
        plan.next_attempt_at = plan.last_attempt_at + schedule[plan.attempts] if plan.attempts < len(schedule) else None
        plan.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    failure_code = ""
    try:
        retry_payment(plan.payment)
    except GatewayError as exc:
        failure_code = exc.code or "gateway_error"
        logger.info("dunning retry %s of payment %s declined: %s", plan.attempts, plan.payment.public_id, exc.code)
    with transaction.atomic():
        plan = DunningPlan.objects.select_for_update().select_related("payment").get(pk=plan_id)
        if plan.status != DunningPlanStatus.ACTIVE:
            return plan  # recovered by a webhook meanwhile
        if failure_code:
            plan.last_failure_code = failure_code
        if plan.next_attempt_at is None and failure_code:
            plan.status = DunningPlanStatus.EXHAUSTED
            _notify(plan.payment, CustomerNotification.Kind.FINAL_NOTICE, plan.attempts)
        elif failure_code:
            _notify(plan.payment, CustomerNotification.Kind.RETRY_SCHEDULED, plan.attempts)
        else:
            # The gateway accepted the retry; its webhook will mark the payment succeeded.
            plan.status, plan.next_attempt_at = DunningPlanStatus.RECOVERED, None
            _notify(plan.payment, CustomerNotification.Kind.PAYMENT_RECOVERED, plan.attempts)
        plan.updated_at = timezone.now()
        plan.save()
    return plan
