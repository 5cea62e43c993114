"""Stripe events translated into payment, refund, dispute and payout facts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from fintech.core.money import currency_code
from fintech.core.queue import enqueue_on_commit

from ..models import DisputeStatus, Gateway, Payment, PaymentStatus, PayoutStatus, RefundStatus, WebhookEvent
from ..services import (
    DisputeFacts,
    PaymentFacts,
    PayoutFacts,
    RefundFacts,
    dispute_apply_facts,
    payment_apply_facts,
    payout_apply_facts,
    refund_apply_facts,
)

STRIPE = Gateway.STRIPE


def _id(value: Any) -> str:
    """A Stripe reference is an id string or, when expanded, an object with an id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) and value > 0 else None


def _payment_key(obj: dict[str, Any], charge_field: str = "charge") -> str:
    """Our key of a Stripe payment: its PaymentIntent id, else the payment holding the charge, else the charge id."""
    intent = _id(obj.get("payment_intent"))
    if intent:
        return intent
    charge = _id(obj.get(charge_field))
    known = Payment.objects.filter(gateway=STRIPE, gateway_charge_id=charge).values_list(
        "gateway_payment_id", flat=True
    )
    return next(iter(known), charge)


def _metadata(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    return {str(k)[:40]: str(v)[:500] for k, v in metadata.items()} if isinstance(metadata, dict) else {}


INTENT_STATUS = {
    "payment_intent.created": PaymentStatus.PENDING,
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
    "payment_intent.processing": PaymentStatus.PROCESSING,
    "payment_intent.canceled": PaymentStatus.CANCELED,
    "payment_intent.requires_action": PaymentStatus.REQUIRES_ACTION,
    "payment_intent.amount_capturable_updated": PaymentStatus.REQUIRES_CAPTURE,
}


def payment_intent_event(event: WebhookEvent, obj: dict[str, Any]) -> None:
    status = INTENT_STATUS[event.event_type]
    error = obj.get("last_payment_error") or {}
    facts = PaymentFacts(
        gateway=STRIPE,
        gateway_payment_id=obj["id"],
        currency=currency_code(obj["currency"]),
        occurred_at=event.occurred_at,
        amount_minor=int(obj["amount"]),
        status=status,
        gateway_charge_id=_id(obj.get("latest_charge")),
        email=str(obj.get("receipt_email") or "").lower(),
        description=str(obj.get("description") or ""),
        metadata=_metadata(obj),
    )
    if status == PaymentStatus.SUCCEEDED:
        facts.amount_captured_minor = int(obj.get("amount_received") or obj["amount"])
    if status == PaymentStatus.FAILED:
        facts.failure_code = str(error.get("decline_code") or error.get("code") or "payment_failed")
        facts.failure_message = str(error.get("message") or "")
    payment_apply_facts(facts=facts, event=event)


def _charge_facts(event: WebhookEvent, charge: dict[str, Any], status: PaymentStatus | None) -> PaymentFacts:
    card = ((charge.get("payment_method_details") or {}).get("card")) or {}
    billing = charge.get("billing_details") or {}
    facts = PaymentFacts(
        gateway=STRIPE,
        gateway_payment_id=_id(charge.get("payment_intent")) or charge["id"],
        currency=currency_code(charge["currency"]),
        occurred_at=event.occurred_at,
        amount_minor=int(charge["amount"]),
        status=status,
        gateway_charge_id=charge["id"],
        card_brand=str(card.get("brand") or ""),
        card_last4=str(card.get("last4") or "")[:4],
        email=str(billing.get("email") or charge.get("receipt_email") or "").lower(),
        payer_name=str(billing.get("name") or ""),
        payer_country=str((billing.get("address") or {}).get("country") or card.get("country") or ""),
        description=str(charge.get("description") or ""),
        metadata=_metadata(charge),
    )
    if status == PaymentStatus.SUCCEEDED:
        facts.amount_captured_minor = int(charge.get("amount_captured") or charge["amount"])
        balance_transaction = charge.get("balance_transaction")
        if isinstance(balance_transaction, dict) and balance_transaction.get("fee"):
            # The fee, when the balance transaction is expanded; otherwise fetched after commit.
            facts.fee_minor = int(balance_transaction["fee"])
            facts.fee_reference = str(balance_transaction["id"])
    if status == PaymentStatus.FAILED:
        outcome = charge.get("outcome") or {}
        facts.failure_code = str(outcome.get("reason") or charge.get("failure_code") or "card_declined")
        facts.failure_message = str(charge.get("failure_message") or outcome.get("seller_message") or "")
    return facts


def _fetch_charge_fee(payment: Payment, charge: dict[str, Any]) -> None:
    """A balance transaction that is not expanded: its fee is fetched from Stripe after commit."""
    balance_transaction = charge.get("balance_transaction")
    if isinstance(balance_transaction, str) and balance_transaction:
        from ..tasks import fetch_stripe_fee

        enqueue_on_commit(fetch_stripe_fee, payment.pk, balance_transaction)


def charge_event(event: WebhookEvent, charge: dict[str, Any]) -> None:
    if event.event_type == "charge.failed":
        status: PaymentStatus | None = PaymentStatus.FAILED
    elif event.event_type == "charge.refunded":
        status = None
    elif charge.get("captured") is False:
        status = PaymentStatus.REQUIRES_CAPTURE
    else:
        status = PaymentStatus.SUCCEEDED
    payment = payment_apply_facts(facts=_charge_facts(event, charge, status), event=event)
    if status == PaymentStatus.SUCCEEDED:
        _fetch_charge_fee(payment, charge)
    if event.event_type == "charge.refunded":
        for refund in (charge.get("refunds") or {}).get("data") or []:
            refund_event(
                event, {**refund, "payment_intent": refund.get("payment_intent") or charge.get("payment_intent")}
            )


REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}


def refund_event(event: WebhookEvent, refund: dict[str, Any]) -> None:
    refund_apply_facts(
        facts=RefundFacts(
            gateway=STRIPE,
            gateway_payment_id=_payment_key(refund),
            gateway_refund_id=refund["id"],
            amount_minor=int(refund["amount"]),
            currency=currency_code(refund["currency"]),
            status=REFUND_STATUS.get(str(refund.get("status")), RefundStatus.PENDING),
            occurred_at=event.occurred_at,
            reason=str(refund.get("reason") or ""),
            failure_reason=str(refund.get("failure_reason") or ""),
            refund_public_id=str(_metadata(refund).get("refund_reference") or ""),
        ),
        event=event,
    )


DISPUTE_STATUS = {value: DisputeStatus(value) for value in DisputeStatus.values}
DISPUTE_STATUS["charge_refunded"] = DisputeStatus.WARNING_CLOSED
DISPUTE_STATUS["prevented"] = DisputeStatus.WARNING_CLOSED


def dispute_event(event: WebhookEvent, dispute: dict[str, Any]) -> None:
    currency = currency_code(dispute["currency"])
    facts = DisputeFacts(
        gateway=STRIPE,
        gateway_dispute_id=dispute["id"],
        gateway_payment_id=_payment_key(dispute),
        amount_minor=int(dispute["amount"]),
        currency=currency,
        status=DISPUTE_STATUS.get(str(dispute.get("status")), DisputeStatus.NEEDS_RESPONSE),
        occurred_at=event.occurred_at,
        reason=str(dispute.get("reason") or ""),
        evidence_due_by=_time((dispute.get("evidence_details") or {}).get("due_by")),
        opened_at=_time(dispute.get("created")),
    )
    transactions = [t for t in dispute.get("balance_transactions") or [] if isinstance(t, dict)]
    if event.event_type == "charge.dispute.funds_withdrawn":
        withdrawals = [t for t in transactions if int(t.get("amount") or 0) < 0]
        facts.funds_withdrawn_minor = -sum(int(t["amount"]) for t in withdrawals) or int(dispute["amount"])
        facts.dispute_fee_minor = sum(int(t.get("fee") or 0) for t in withdrawals)
    elif event.event_type == "charge.dispute.funds_reinstated":
        reinstatements = [t for t in transactions if int(t.get("amount") or 0) > 0]
        facts.funds_reinstated_minor = sum(int(t["amount"]) for t in reinstatements) or int(dispute["amount"])
    dispute_apply_facts(facts=facts, event=event)


PAYOUT_STATUS = {value: PayoutStatus(value) for value in PayoutStatus.values}


def payout_event(event: WebhookEvent, payout: dict[str, Any]) -> None:
    arrival = _time(payout.get("arrival_date"))
    balance_transaction = payout.get("balance_transaction")
    fee = int(balance_transaction.get("fee") or 0) if isinstance(balance_transaction, dict) else 0
    status = {
        "payout.paid": PayoutStatus.PAID,
        "payout.failed": PayoutStatus.FAILED,
        "payout.canceled": PayoutStatus.CANCELED,
    }.get(event.event_type, PAYOUT_STATUS.get(str(payout.get("status")), PayoutStatus.PENDING))
    payout_apply_facts(
        facts=PayoutFacts(
            gateway=STRIPE,
            gateway_payout_id=payout["id"],
            amount_minor=int(payout["amount"]),
            currency=currency_code(payout["currency"]),
            status=status,
            occurred_at=event.occurred_at,
            arrival_date=arrival.date() if arrival else None,
            failure_code=str(payout.get("failure_code") or ""),
            failure_message=str(payout.get("failure_message") or ""),
            fee_minor=fee,
        ),
        event=event,
    )


HANDLERS: dict[str, Callable[[WebhookEvent, dict[str, Any]], None]] = {
    **dict.fromkeys(INTENT_STATUS, payment_intent_event),
    **dict.fromkeys(["charge.succeeded", "charge.failed", "charge.captured", "charge.refunded"], charge_event),
    **dict.fromkeys(["charge.refund.updated", "refund.created", "refund.updated", "refund.failed"], refund_event),
    **dict.fromkeys(
        [
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ],
        dispute_event,
    ),
    **dict.fromkeys(
        ["payout.created", "payout.updated", "payout.paid", "payout.failed", "payout.canceled"], payout_event
    ),
}


def partition_key(event: WebhookEvent) -> str:
    """The PaymentIntent an event concerns (else its charge, else its object), from the payload alone."""
    data = event.payload.get("data") if isinstance(event.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return event.object_id
    if obj.get("object") == "payment_intent":
        return str(obj.get("id") or "")
    return _id(obj.get("payment_intent")) or _id(obj.get("charge")) or str(obj.get("id") or "")


def handle(event: WebhookEvent) -> bool:
    """Apply a Stripe event; False when its type is not one we act on (it is then marked ignored)."""
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        return False
    handler(event, event.payload["data"]["object"])
    return True


__all__ = ["HANDLERS", "date", "handle", "partition_key"]
