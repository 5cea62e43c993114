"""Writes of the payments app: gateway facts applied to payments, refunds, disputes, payouts and the ledger.

Gateway handlers (``payments.handlers``) translate an event into the facts below and call these
services inside the transaction that also marks the webhook processed. Each service locks the
row it changes (created first with ``ON CONFLICT DO NOTHING`` when new, so concurrent first
deliveries never raise IntegrityError), applies the status rules of ``payments.states`` and posts
ledger effects under idempotency keys. Payment rows are always locked before refund, dispute and
payout rows, so two workers never wait on each other in opposite order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from fintech.core.hooks import hook_on_commit
from fintech.core.models import Customer

from . import dunning
from .ledger import Line, ledger_post, ledger_reverse
from .models import (
    Dispute,
    DisputeStatus,
    LedgerAccountKind,
    Payment,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    WebhookEvent,
)
from .payment_rows import payment_insert, payment_lock_by_gateway_id, payment_update
from .states import DISPUTE_RULES, PAYMENT_RULES, PAYOUT_RULES, REFUND_RULES

Kind = LedgerAccountKind
# The statuses a dunning plan reacts to (starts, recovers, cancels); other changes skip it.
DUNNING_STATUSES = frozenset({PaymentStatus.FAILED, PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED})


@dataclass
class PaymentFacts:
    """What one event says about a payment. None means "not stated by this event"."""

    gateway: str
    gateway_payment_id: str
    currency: str
    occurred_at: datetime
    amount_minor: int | None = None
    status: PaymentStatus | None = None
    amount_captured_minor: int | None = None
    gateway_charge_id: str = ""
    failure_code: str = ""
    failure_message: str = ""
    card_brand: str = ""
    card_last4: str = ""
    email: str = ""
    # The payer as the gateway reports them (billing name and country): screened for sanctions.
    payer_name: str = ""
    payer_country: str = ""
    description: str = ""
    subscription_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # A fee the gateway reported with this event (Braintree service fee), with its own id.
    fee_minor: int | None = None
    fee_reference: str = ""


def _payment_for_update(facts: PaymentFacts) -> Payment:
    gateway, gateway_payment_id = facts.gateway, facts.gateway_payment_id
    payment = payment_lock_by_gateway_id(gateway, gateway_payment_id)
    if payment is not None:
        return payment
    pending = _pending_payment_referenced(facts)
    if pending is not None:
        return pending
    return _payment_insert_and_lock(gateway, gateway_payment_id, facts.currency, facts.amount_minor)


def _pending_payment_referenced(facts: PaymentFacts) -> Payment | None:
    """Our API's pending payment that this gateway payment carries the reference of.

    A payment created through the API whose gateway answer never reached us (a timeout: 503) is
    a row with a placeholder gateway id; the gateway's webhooks name it in the metadata (Stripe
    ``payment_reference``, Braintree ``order_id``). They adopt that row instead of creating a second
    one without its merchant. If the API attaches the gateway id first, the locked re-check finds
    the placeholder gone and the caller uses the row by gateway id.
    """
    metadata = facts.metadata or {}
    reference = str(metadata.get("payment_reference") or metadata.get("order_id") or "")
    if not reference.startswith("pay_"):
        return None
    placeholder = f"api:{reference}"
    pending = (
        Payment.objects.select_for_update()
        .filter(public_id=reference, gateway=facts.gateway, gateway_payment_id=placeholder)
        .first()
    )
    if pending is None:
        return None
    updated = Payment.objects.filter(pk=pending.pk, gateway_payment_id=placeholder).update(
        gateway_payment_id=facts.gateway_payment_id, updated_at=timezone.now()
    )
    if updated != 1:
        return None
    pending.gateway_payment_id = facts.gateway_payment_id
    return pending


def _payment_row(gateway: str, gateway_payment_id: str, currency: str, amount_minor: int | None) -> Payment:
    """The payment, locked; inserted first when this is the first we hear of it."""
    payment = payment_lock_by_gateway_id(gateway, gateway_payment_id)
    return payment or _payment_insert_and_lock(gateway, gateway_payment_id, currency, amount_minor)


def _payment_insert_and_lock(gateway: str, gateway_payment_id: str, currency: str, amount_minor: int | None) -> Payment:
    """Insert the payment and return it (our insert holds its lock); lock the row another
    transaction inserted first. One round trip when the insert wins."""
    row = Payment(
        gateway=gateway, gateway_payment_id=gateway_payment_id, currency=currency, amount_minor=amount_minor or 0
    )
    payment = payment_insert(row) or payment_lock_by_gateway_id(gateway, gateway_payment_id)
    if payment is None:
        raise Payment.DoesNotExist(f"payment {gateway} {gateway_payment_id} vanished after its insert")
    return payment


def _customer_from_metadata(metadata: dict[str, Any]) -> Customer | None:
    reference = str(metadata.get("customer_reference") or "")
    if not reference.isdigit():
        return None
    return Customer.objects.filter(pk=int(reference)).first()


def payment_apply_facts(*, facts: PaymentFacts, event: WebhookEvent | None = None) -> Payment:
    payment = _payment_for_update(facts)
    changed: set[str] = set()

    def assign(name: str, value: Any) -> None:
        if value not in (None, "") and getattr(payment, name) != value:
            setattr(payment, name, value)
            changed.add(name)

    newer = payment.status_event_at is None or facts.occurred_at >= payment.status_event_at
    if facts.amount_minor is not None and (newer or payment.amount_minor == 0):
        assign("amount_minor", facts.amount_minor)
    for name in ("gateway_charge_id", "card_brand", "card_last4", "email", "description", "subscription_id"):
        if not getattr(payment, name):
            assign(name, getattr(facts, name))
    if facts.payer_name and not payment.payer_name:
        assign("payer_name", facts.payer_name.strip()[:200])
        assign("payer_country", facts.payer_country.strip().upper()[:2])
        # A counterparty is recorded: compliance screens it (after commit, by a hook it names).
        hook_on_commit(
            "COUNTERPARTY_SCREENING_HOOK",
            name=payment.payer_name,
            country=payment.payer_country,
            source_type="payments.payment",
            source_id=payment.pk,
        )
    if facts.metadata and not payment.metadata:
        assign("metadata", facts.metadata)
        if payment.customer_id is None:
            assign("customer", _customer_from_metadata(facts.metadata))
    if facts.failure_code and (payment.failed_at is None or facts.occurred_at >= payment.failed_at):
        assign("failure_code", facts.failure_code[:100])
        assign("failure_message", facts.failure_message[:500])
        assign("failed_at", facts.occurred_at)
    if facts.amount_captured_minor is not None and facts.amount_captured_minor > payment.amount_captured_minor:
        assign("amount_captured_minor", facts.amount_captured_minor)

    previous_status = payment.status
    if facts.status is not None and PAYMENT_RULES.wins(
        payment.status, payment.status_event_at, facts.status, facts.occurred_at
    ):
        payment.status = facts.status
        payment.status_event_at = facts.occurred_at
        changed |= {"status", "status_event_at"}
        if facts.status == PaymentStatus.SUCCEEDED:
            payment.succeeded_at = facts.occurred_at
            changed.add("succeeded_at")
        if facts.status == PaymentStatus.FAILED and payment.failed_at is None:
            # Every payment that failed has a failure time, even without a code (dunning relies on it).
            assign("failed_at", facts.occurred_at)

    if payment.status == PaymentStatus.SUCCEEDED and payment.amount_captured_minor == 0:
        # A success that does not state the captured amount captured the whole amount.
        assign("amount_captured_minor", payment.amount_minor)

    if payment.status == PaymentStatus.SUCCEEDED:
        _post_capture(payment, facts.occurred_at, event)
    elif payment.status == PaymentStatus.CANCELED:
        _reverse_capture(payment, facts.occurred_at)
    if facts.fee_minor and _post_fee(
        payment, fee_minor=facts.fee_minor, reference=facts.fee_reference, occurred_at=facts.occurred_at
    ):
        changed.add("fee_minor")
    if changed:
        payment.updated_at = timezone.now()
        payment_update(payment, [*changed, "updated_at"])
    if payment.status != previous_status and payment.status in DUNNING_STATUSES:
        dunning.payment_status_changed(payment=payment, previous_status=previous_status)
    if event is not None and event.payment_id != payment.pk:
        event.payment = payment
    return payment


def _post_capture(payment: Payment, occurred_at: datetime, event: WebhookEvent | None) -> None:
    """Funds captured: owed to the customer, held at the gateway until paid out. Once per captured total."""
    if not payment.amount_captured_minor:
        return
    ledger_post(
        key=f"{payment.gateway}:payment:{payment.gateway_payment_id}:captured",
        description=f"Payment {payment.public_id} captured",
        occurred_at=occurred_at,
        gateway=payment.gateway,
        currency=payment.currency,
        lines=[
            Line(Kind.GATEWAY_CLEARING, payment.amount_captured_minor),
            Line(Kind.CUSTOMER_FUNDS, -payment.amount_captured_minor),
        ],
        payment=payment,
        webhook_event=event,
    )


def _reverse_capture(payment: Payment, occurred_at: datetime) -> None:
    """A payment canceled after its capture was posted (a Braintree void before settlement): the
    capture never completes, so its entry is reversed, once. Nothing when no capture was posted:
    a canceled payment never posts a capture, so either both entries exist or neither does."""
    captured_key = f"{payment.gateway}:payment:{payment.gateway_payment_id}:captured"
    ledger_reverse(
        key=f"{captured_key}:reversed",
        original_key=captured_key,
        description=f"Payment {payment.public_id} voided: capture reversed",
        occurred_at=occurred_at,
    )


def payment_record_fee(*, payment: Payment, fee_minor: int, reference: str, occurred_at: datetime) -> bool:
    """Record a gateway fee once per gateway reference (balance transaction, transaction id)."""
    posted = _post_fee(payment, fee_minor=fee_minor, reference=reference, occurred_at=occurred_at)
    if posted:
        Payment.objects.filter(pk=payment.pk).update(fee_minor=payment.fee_minor, updated_at=timezone.now())
    return posted


def _post_fee(payment: Payment, *, fee_minor: int, reference: str, occurred_at: datetime) -> bool:
    """Post a fee once per gateway reference and add it to ``payment.fee_minor`` (not saved)."""
    entry = ledger_post(
        key=f"{payment.gateway}:fee:{reference or payment.gateway_payment_id}",
        description=f"Gateway fee on payment {payment.public_id}",
        occurred_at=occurred_at,
        gateway=payment.gateway,
        currency=payment.currency,
        lines=[Line(Kind.FEES, fee_minor), Line(Kind.GATEWAY_CLEARING, -fee_minor)],
        payment=payment,
    )
    if entry is not None:
        payment.fee_minor += fee_minor
    return entry is not None


@dataclass
class RefundFacts:
    gateway: str
    gateway_payment_id: str
    gateway_refund_id: str
    amount_minor: int
    currency: str
    status: RefundStatus
    occurred_at: datetime
    reason: str = ""
    failure_reason: str = ""
    # Our refund reference, when the refund was requested through the API (gateway metadata).
    refund_public_id: str = ""


def refund_apply_facts(*, facts: RefundFacts, event: WebhookEvent | None = None) -> Refund:
    payment = _payment_row(facts.gateway, facts.gateway_payment_id, facts.currency, None)
    refund = (
        Refund.objects.select_for_update().filter(payment=payment, gateway_refund_id=facts.gateway_refund_id).first()
    )
    if refund is None and facts.refund_public_id:
        refund = (
            Refund.objects.select_for_update()
            .filter(payment=payment, public_id=facts.refund_public_id, gateway_refund_id="")
            .first()
        )
    if refund is None:
        refund = Refund.objects.create(
            payment=payment,
            gateway_refund_id=facts.gateway_refund_id,
            amount_minor=facts.amount_minor,
            currency=facts.currency,
            status=facts.status,
            status_event_at=facts.occurred_at,
            reason=facts.reason[:100],
            failure_reason=facts.failure_reason[:500],
        )
    else:
        refund.gateway_refund_id = facts.gateway_refund_id
        if REFUND_RULES.wins(refund.status, refund.status_event_at, facts.status, facts.occurred_at):
            refund.status, refund.status_event_at = facts.status, facts.occurred_at
            refund.failure_reason = facts.failure_reason[:500] or refund.failure_reason
        refund.updated_at = timezone.now()
        refund.save()
    _post_refund(payment, refund, facts.occurred_at, event)
    if event is not None:
        event.payment = payment
    return refund


def _post_refund(payment: Payment, refund: Refund, occurred_at: datetime, event: WebhookEvent | None) -> None:
    succeeded_key = f"{payment.gateway}:refund:{refund.gateway_refund_id or refund.public_id}:succeeded"
    if refund.method == RefundMethod.VOID:
        pass  # no money moved: the payment's canceled status reverses its capture instead
    elif refund.status == RefundStatus.SUCCEEDED:
        ledger_post(
            key=succeeded_key,
            description=f"Refund {refund.public_id} of payment {payment.public_id}",
            occurred_at=occurred_at,
            gateway=payment.gateway,
            currency=refund.currency,
            lines=[Line(Kind.REFUNDS, refund.amount_minor), Line(Kind.GATEWAY_CLEARING, -refund.amount_minor)],
            payment=payment,
            webhook_event=event,
        )
    elif refund.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
        ledger_reverse(
            key=f"{succeeded_key}:reversed",
            original_key=succeeded_key,
            description=f"Refund {refund.public_id} {refund.status}: reversed",
            occurred_at=occurred_at,
        )
    refunded = payment.refunds.filter(status=RefundStatus.SUCCEEDED).aggregate(total=Sum("amount_minor"))["total"] or 0
    if refunded != payment.amount_refunded_minor:
        payment.amount_refunded_minor = refunded
        payment.updated_at = timezone.now()
        payment_update(payment, ["amount_refunded_minor", "updated_at"])


@dataclass
class DisputeFacts:
    gateway: str
    gateway_dispute_id: str
    gateway_payment_id: str
    amount_minor: int
    currency: str
    status: DisputeStatus
    occurred_at: datetime
    reason: str = ""
    evidence_due_by: datetime | None = None
    opened_at: datetime | None = None
    # Stated by funds_withdrawn / funds_reinstated events (Stripe); Braintree implies them.
    funds_withdrawn_minor: int | None = None
    funds_reinstated_minor: int | None = None
    dispute_fee_minor: int = 0


def dispute_apply_facts(*, facts: DisputeFacts, event: WebhookEvent | None = None) -> Dispute:
    payment = _payment_row(facts.gateway, facts.gateway_payment_id, facts.currency, None)
    Dispute.objects.bulk_create(
        [
            Dispute(
                gateway=facts.gateway,
                gateway_dispute_id=facts.gateway_dispute_id,
                payment=payment,
                amount_minor=facts.amount_minor,
                currency=facts.currency,
                status=facts.status,
                status_event_at=facts.occurred_at,
                reason=facts.reason[:100],
                evidence_due_by=facts.evidence_due_by,
                opened_at=facts.opened_at or facts.occurred_at,
            )
        ],
        ignore_conflicts=True,
    )
    dispute = Dispute.objects.select_for_update().get(
        gateway=facts.gateway, gateway_dispute_id=facts.gateway_dispute_id
    )
    if DISPUTE_RULES.wins(dispute.status, dispute.status_event_at, facts.status, facts.occurred_at):
        dispute.status, dispute.status_event_at = facts.status, facts.occurred_at
        if facts.status in DISPUTE_RULES.final:
            dispute.closed_at = facts.occurred_at
    if facts.evidence_due_by and (
        dispute.evidence_due_by is None
        or dispute.status_event_at is None
        or facts.occurred_at >= dispute.status_event_at
    ):
        dispute.evidence_due_by = facts.evidence_due_by
    dispute.reason = dispute.reason or facts.reason[:100]
    if facts.opened_at and facts.opened_at < dispute.opened_at:
        dispute.opened_at = facts.opened_at

    base_key = f"{facts.gateway}:dispute:{facts.gateway_dispute_id}"
    if facts.funds_withdrawn_minor:
        entry = ledger_post(
            key=f"{base_key}:withdrawn",
            description=f"Dispute {facts.gateway_dispute_id}: funds withdrawn",
            occurred_at=facts.occurred_at,
            gateway=facts.gateway,
            currency=facts.currency,
            lines=[
                Line(Kind.DISPUTES, facts.funds_withdrawn_minor),
                Line(Kind.FEES, facts.dispute_fee_minor),
                Line(Kind.GATEWAY_CLEARING, -(facts.funds_withdrawn_minor + facts.dispute_fee_minor)),
            ],
            payment=payment,
            webhook_event=event,
        )
        if entry is not None:
            dispute.funds_withdrawn_minor = facts.funds_withdrawn_minor
    if facts.funds_reinstated_minor:
        entry = ledger_post(
            key=f"{base_key}:reinstated",
            description=f"Dispute {facts.gateway_dispute_id}: funds reinstated",
            occurred_at=facts.occurred_at,
            gateway=facts.gateway,
            currency=facts.currency,
            lines=[
                Line(Kind.GATEWAY_CLEARING, facts.funds_reinstated_minor),
                Line(Kind.DISPUTES, -facts.funds_reinstated_minor),
            ],
            payment=payment,
            webhook_event=event,
        )
        if entry is not None:
            dispute.funds_reinstated_minor = facts.funds_reinstated_minor
    dispute.updated_at = timezone.now()
    dispute.save()
    if event is not None:
        event.payment = payment
    return dispute


@dataclass
class PayoutFacts:
    gateway: str
    gateway_payout_id: str
    amount_minor: int
    currency: str
    status: PayoutStatus
    occurred_at: datetime
    arrival_date: Any = None
    failure_code: str = ""
    failure_message: str = ""
    fee_minor: int = 0
    transaction_ids: list[str] = field(default_factory=list)


def payout_apply_facts(*, facts: PayoutFacts, event: WebhookEvent | None = None) -> Payout:
    Payout.objects.bulk_create(
        [
            Payout(
                gateway=facts.gateway,
                gateway_payout_id=facts.gateway_payout_id,
                amount_minor=facts.amount_minor,
                currency=facts.currency,
                status=facts.status,
                status_event_at=facts.occurred_at,
                arrival_date=facts.arrival_date,
                transaction_ids=facts.transaction_ids,
            )
        ],
        ignore_conflicts=True,
    )
    payout = Payout.objects.select_for_update().get(gateway=facts.gateway, gateway_payout_id=facts.gateway_payout_id)
    if PAYOUT_RULES.wins(payout.status, payout.status_event_at, facts.status, facts.occurred_at):
        payout.status, payout.status_event_at = facts.status, facts.occurred_at
    if facts.failure_code:
        payout.failure_code, payout.failure_message = facts.failure_code[:100], facts.failure_message[:500]
    payout.arrival_date = payout.arrival_date or facts.arrival_date
    payout.transaction_ids = payout.transaction_ids or facts.transaction_ids
    paid_key = f"{facts.gateway}:payout:{facts.gateway_payout_id}:paid"
    if payout.status == PayoutStatus.PAID:
        ledger_post(
            key=paid_key,
            description=f"Payout {facts.gateway_payout_id} paid",
            occurred_at=facts.occurred_at,
            gateway=facts.gateway,
            currency=facts.currency,
            lines=[Line(Kind.PAYOUTS, payout.amount_minor), Line(Kind.GATEWAY_CLEARING, -payout.amount_minor)],
            payout=payout,
            webhook_event=event,
        )
    elif payout.status == PayoutStatus.FAILED:
        ledger_reverse(
            key=f"{paid_key}:reversed",
            original_key=paid_key,
            description=f"Payout {facts.gateway_payout_id} failed after it was paid: reversed",
            occurred_at=facts.occurred_at,
        )
    if facts.fee_minor and payout.fee_minor == 0:
        entry = ledger_post(
            key=f"{facts.gateway}:payout:{facts.gateway_payout_id}:fee",
            description=f"Payout {facts.gateway_payout_id} fee",
            occurred_at=facts.occurred_at,
            gateway=facts.gateway,
            currency=facts.currency,
            lines=[Line(Kind.FEES, facts.fee_minor), Line(Kind.GATEWAY_CLEARING, -facts.fee_minor)],
            payout=payout,
            webhook_event=event,
        )
        if entry is not None:
            payout.fee_minor = facts.fee_minor
    payout.updated_at = timezone.now()
    payout.save()
    return payout


def payment_lock(payment_id: int) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


__all__ = [
    "DisputeFacts",
    "PaymentFacts",
    "PayoutFacts",
    "RefundFacts",
    "dispute_apply_facts",
    "payment_apply_facts",
    "payment_lock",
    "payment_record_fee",
    "payout_apply_facts",
    "refund_apply_facts",
    "transaction",
]
