"""Braintree notifications translated into payment, refund, dispute and payout facts.

The stored notification XML (verified at the endpoint) is parsed again with the SDK here, so the
handlers read the SDK's own objects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

from braintree.util.xml_util import XmlUtil
from braintree.webhook_notification import WebhookNotification
from django.conf import settings

from fintech.core.money import currency_code, to_minor

from ..gateways.braintree import braintree_gateway
from ..models import DisputeStatus, Gateway, PaymentStatus, PayoutStatus, Refund, RefundStatus, WebhookEvent
from ..services import (
    DisputeFacts,
    PaymentFacts,
    PayoutFacts,
    RefundFacts,
    dispute_apply_facts,
    payment_apply_facts,
    payment_record_fee,
    payout_apply_facts,
    refund_apply_facts,
)

BRAINTREE = Gateway.BRAINTREE


def notification_from(event: WebhookEvent) -> Any:
    attributes = XmlUtil.dict_from_xml(event.payload["xml"])
    return WebhookNotification(braintree_gateway(), attributes["notification"])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _currency(subject: Any) -> str:
    """The subject's currency, else the merchant account's (some notifications omit it)."""
    return currency_code(_text(getattr(subject, "currency_iso_code", None)) or settings.BRAINTREE_CURRENCY)


def _at_midnight(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    return None


# Transaction statuses after which the sale is captured (submitted or settled).
_CAPTURED = {"submitted_for_settlement", "settling", "settlement_pending", "settled", "settlement_confirmed"}
_FAILED = {"processor_declined", "gateway_rejected", "failed", "settlement_declined"}


def _payer_name(billing: Any, customer: Any) -> str:
    """The billing name, else the customer's; a company when no person is named."""
    for source in (billing, customer):
        person = " ".join(
            part for part in (_text(getattr(source, "first_name", "")), _text(getattr(source, "last_name", ""))) if part
        )
        if person:
            return person
    for source in (billing, customer):
        company = _text(getattr(source, "company", ""))
        if company:
            return company
    return ""


def _sale_facts(transaction: Any, occurred_at: datetime, status: PaymentStatus | None) -> PaymentFacts:
    currency = _currency(transaction)
    card = getattr(transaction, "credit_card_details", None)
    customer = getattr(transaction, "customer_details", None)
    facts = PaymentFacts(
        gateway=BRAINTREE,
        gateway_payment_id=_text(transaction.id),
        currency=currency,
        occurred_at=occurred_at,
        amount_minor=to_minor(transaction.amount, currency),
        status=status,
        card_brand=_text(getattr(card, "card_type", "")),
        card_last4=_text(getattr(card, "last_4", ""))[:4],
        email=_text(getattr(customer, "email", "")).lower(),
        payer_name=_payer_name(getattr(transaction, "billing_details", None), customer),
        payer_country=_text(getattr(getattr(transaction, "billing_details", None), "country_code_alpha2", "")),
        subscription_id=_text(getattr(transaction, "subscription_id", "")),
        metadata={"order_id": _text(getattr(transaction, "order_id", ""))}
        if getattr(transaction, "order_id", None)
        else {},
    )
    if status == PaymentStatus.SUCCEEDED:
        facts.amount_captured_minor = facts.amount_minor
    if status == PaymentStatus.FAILED:
        code = getattr(transaction, "processor_settlement_response_code", None) or getattr(
            transaction, "processor_response_code", None
        )
        text = getattr(transaction, "processor_settlement_response_text", None) or getattr(
            transaction, "processor_response_text", None
        )
        facts.failure_code = _text(code) or _text(transaction.status)
        facts.failure_message = _text(text)
    service_fee = getattr(transaction, "service_fee_amount", None)
    if service_fee and status == PaymentStatus.SUCCEEDED:
        facts.fee_minor = to_minor(service_fee, currency)
        facts.fee_reference = f"transaction:{transaction.id}"
    return facts


def _refunded_payment_id(transaction: Any) -> str:
    refunded = _text(getattr(transaction, "refunded_transaction_id", None))
    if refunded:
        return refunded
    known = Refund.objects.filter(payment__gateway=BRAINTREE, gateway_refund_id=_text(transaction.id))
    payment_id = known.values_list("payment__gateway_payment_id", flat=True).first()
    if payment_id is None:
        raise UnknownRefundError(
            f"Braintree refund {transaction.id} names no refunded transaction and is not known here"
        )
    return payment_id


class UnknownRefundError(LookupError):
    pass


def _refund_facts(transaction: Any, occurred_at: datetime, status: RefundStatus) -> RefundFacts:
    currency = _currency(transaction)
    return RefundFacts(
        gateway=BRAINTREE,
        gateway_payment_id=_refunded_payment_id(transaction),
        gateway_refund_id=_text(transaction.id),
        amount_minor=to_minor(transaction.amount, currency),
        currency=currency,
        status=status,
        occurred_at=occurred_at,
        failure_reason=_text(getattr(transaction, "processor_response_text", ""))
        if status == RefundStatus.FAILED
        else "",
        refund_public_id=_text(getattr(transaction, "order_id", ""))
        if _text(getattr(transaction, "order_id", "")).startswith("ref_")
        else "",
    )


def _is_credit(transaction: Any) -> bool:
    return _text(getattr(transaction, "type", "")) == "credit" and bool(
        getattr(transaction, "refunded_transaction_id", None)
    )


def transaction_settled(event: WebhookEvent, notification: Any) -> None:
    transaction = notification.transaction
    if _is_credit(transaction):
        refund_apply_facts(facts=_refund_facts(transaction, event.occurred_at, RefundStatus.SUCCEEDED), event=event)
    else:
        payment_apply_facts(facts=_sale_facts(transaction, event.occurred_at, PaymentStatus.SUCCEEDED), event=event)


def transaction_settlement_declined(event: WebhookEvent, notification: Any) -> None:
    transaction = notification.transaction
    if _is_credit(transaction):
        refund_apply_facts(facts=_refund_facts(transaction, event.occurred_at, RefundStatus.FAILED), event=event)
    else:
        payment_apply_facts(facts=_sale_facts(transaction, event.occurred_at, PaymentStatus.FAILED), event=event)


def refund_failed(event: WebhookEvent, notification: Any) -> None:
    refund_apply_facts(
        facts=_refund_facts(notification.transaction, event.occurred_at, RefundStatus.FAILED), event=event
    )


def _subscription_transaction_status(transaction: Any) -> PaymentStatus:
    status = _text(transaction.status)
    if status in _CAPTURED:
        return PaymentStatus.SUCCEEDED
    if status in _FAILED:
        return PaymentStatus.FAILED
    if status == "voided":
        return PaymentStatus.CANCELED
    return PaymentStatus.PROCESSING


def subscription_event(event: WebhookEvent, notification: Any) -> None:
    """Apply the subscription's most recent transaction (Braintree lists the newest first)."""
    subscription = notification.subscription
    transactions = list(getattr(subscription, "transactions", None) or [])
    if not transactions:
        return
    transaction = transactions[0]
    if not getattr(transaction, "subscription_id", None):
        transaction.subscription_id = subscription.id
    status = _subscription_transaction_status(transaction)
    if event.event_type == "subscription_charged_unsuccessfully" or (
        event.event_type == "subscription_went_past_due" and status != PaymentStatus.SUCCEEDED
    ):
        status = PaymentStatus.FAILED
    payment_apply_facts(facts=_sale_facts(transaction, event.occurred_at, status), event=event)


DISPUTE_STATUS = {
    "dispute_opened": DisputeStatus.NEEDS_RESPONSE,
    "dispute_disputed": DisputeStatus.UNDER_REVIEW,
    "dispute_under_review": DisputeStatus.UNDER_REVIEW,
    "dispute_won": DisputeStatus.WON,
    "dispute_lost": DisputeStatus.LOST,
    "dispute_accepted": DisputeStatus.ACCEPTED,
    "dispute_auto_accepted": DisputeStatus.ACCEPTED,
    "dispute_expired": DisputeStatus.EXPIRED,
}


def dispute_event(event: WebhookEvent, notification: Any) -> None:
    dispute = notification.dispute
    currency = _currency(dispute)
    amount = to_minor(dispute.amount_disputed, currency)
    status = DISPUTE_STATUS[event.event_type]
    disputed_transaction = getattr(dispute, "transaction", None)
    facts = DisputeFacts(
        gateway=BRAINTREE,
        gateway_dispute_id=_text(dispute.id),
        gateway_payment_id=_text(getattr(disputed_transaction, "id", "")),
        amount_minor=amount,
        currency=currency,
        status=status,
        occurred_at=event.occurred_at,
        reason=_text(getattr(dispute, "reason", "")),
        evidence_due_by=_at_midnight(getattr(dispute, "reply_by_date", None)),
        opened_at=_at_midnight(getattr(dispute, "received_date", None)),
        # Braintree debits the disputed amount when the dispute opens (every kind implies it)
        # and returns it when the merchant wins.
        funds_withdrawn_minor=amount,
        funds_reinstated_minor=amount if status == DisputeStatus.WON else None,
    )
    dispute_apply_facts(facts=facts, event=event)


def disbursement_event(event: WebhookEvent, notification: Any) -> None:
    disbursement = notification.disbursement
    merchant_account = getattr(disbursement, "merchant_account", None)
    currency = _currency(merchant_account)
    disbursed_on = getattr(disbursement, "disbursement_date", None)
    payout_apply_facts(
        facts=PayoutFacts(
            gateway=BRAINTREE,
            gateway_payout_id=_text(disbursement.id),
            amount_minor=to_minor(disbursement.amount, currency),
            currency=currency,
            status=PayoutStatus.PAID if getattr(disbursement, "success", False) else PayoutStatus.FAILED,
            occurred_at=event.occurred_at,
            arrival_date=disbursed_on if isinstance(disbursed_on, date) else None,
            failure_code="" if getattr(disbursement, "success", False) else "disbursement_failed",
            failure_message=_text(getattr(disbursement, "exception_message", "")),
            transaction_ids=[str(t) for t in (getattr(disbursement, "transaction_ids", None) or [])],
        ),
        event=event,
    )


HANDLERS: dict[str, Callable[[WebhookEvent, Any], None]] = {
    "transaction_settled": transaction_settled,
    "transaction_settlement_declined": transaction_settlement_declined,
    "refund_failed": refund_failed,
    "subscription_charged_successfully": subscription_event,
    "subscription_charged_unsuccessfully": subscription_event,
    "subscription_went_past_due": subscription_event,
    "disbursement": disbursement_event,
    **dict.fromkeys(DISPUTE_STATUS, dispute_event),
}


def handle(event: WebhookEvent) -> bool:
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        return False
    handler(event, notification_from(event))
    return True


__all__ = ["handle", "payment_record_fee"]
