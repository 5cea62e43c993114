"""Writes (and the few reads) of the merchant REST API: keys, customers, payments, refunds, idempotency.

Payments and refunds are opened in a committed transaction *before* the gateway is called and
completed in a second one after it answered, so a crash or an unreachable gateway leaves a
pending row that the gateway's webhooks complete later, never a charge we have no trace of. The
gateway's synchronous answer goes through the same services as webhooks
(``payment_apply_facts``, ``refund_apply_facts``), whose rules are order-independent: whichever
of the answer and the webhooks is applied first, the final state is the same.

Rules the API enforces here (docs/api.md):
- A merchant is the user of the API key; it sees and changes only payments whose ``merchant`` it
  is, and any other payment id is "not found".
- A payment may name only a customer linked to the merchant (``MerchantCustomer``): one it
  created through ``POST /api/customers``, or one staff linked with ``merchant_customer_link``.
- Refunds never exceed the captured amount minus the pending and succeeded refunds; the payment
  row is locked while the amount is checked and the pending refund is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.customers import customer_create
from fintech.core.exceptions import ApplicationError, InvalidTransition, ValidationFailed
from fintech.core.models import Customer
from fintech.core.money import MoneyError, currency_code, to_minor

from .api_models import ApiKey, IdempotencyRecord, MerchantCustomer
from .authentication import api_key_hash
from .gateways import GatewayError
from .gateways import braintree as braintree_adapter
from .gateways import stripe as stripe_adapter
from .handlers.braintree import _sale_facts as braintree_sale_facts
from .models import Gateway, Payment, PaymentStatus, Refund, RefundMethod, RefundStatus
from .services import PaymentFacts, RefundFacts, payment_apply_facts, refund_apply_facts

logger = logging.getLogger("fintech.payments.checkout")

__all__ = [
    "CustomerFrozen",
    "GatewayUnavailable",
    "IdempotencyClaim",
    "IdempotencyReplay",
    "NotFound",
    "api_key_create",
    "api_key_revoke",
    "checkout_payment_create",
    "checkout_refund_create",
    "idempotency_begin",
    "idempotency_finish",
    "idempotency_records_purge",
    "idempotency_release",
    "idempotency_request_hash",
    "merchant_api_grant",
    "merchant_customer_create",
    "merchant_customer_link",
    "merchant_payment_get",
    "merchant_payments",
]


# --------------------------------------------------------------------------------------- errors


class NotFound(ApplicationError):
    status_code = 404
    title = "Not found"
    code = "not_found"


class PaymentNotRefundable(InvalidTransition):
    code = "payment_not_refundable"


class PaymentNotSettled(InvalidTransition):
    code = "payment_not_settled"


class RefundExceedsRefundable(ApplicationError):
    status_code = 422
    title = "Amount too large"
    code = "amount_exceeds_refundable"


class CustomerFrozen(ApplicationError):
    """Compliance froze the customer (a confirmed sanctions match): no money moves for them."""

    status_code = 403
    title = "Customer frozen"
    code = "customer_frozen"


class GatewayUnavailable(ApplicationError):
    """The gateway could not be reached or failed; what it did is unknown until its webhooks arrive."""

    status_code = 503
    title = "Gateway unavailable"
    code = "gateway_unavailable"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.extra = extra or {}


class IdempotencyKeyInvalid(ValidationFailed):
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    title = "Idempotency key reused"
    code = "idempotency_key_reused"


class IdempotencyRequestInProgress(ApplicationError):
    status_code = 409
    title = "Request in progress"
    code = "idempotency_request_in_progress"


# ------------------------------------------------------------------------------------- API keys

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def api_key_create(*, user: Any, name: str, actor: Any) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the key, which exists nowhere else afterwards."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("Give the key a name of 1 to 100 characters.", field="name")
    if not user.is_active:
        raise ValidationFailed(f"User {user.get_username()} is disabled.", field="user")
    mode = "live" if settings.DJANGO_ENV == "production" else "test"
    prefix = f"fk_{mode}_" + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        api_key = ApiKey.objects.create(user=user, name=name, prefix=prefix, secret_hash=api_key_hash(key))
        audit_record(
            actor=actor,
            action="api_key.created",
            target=api_key,
            details={"user_id": user.pk, "username": user.get_username(), "prefix": prefix, "name": name},
        )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, actor: Any) -> ApiKey:
    now = timezone.now()
    with transaction.atomic():
        if not ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
            raise InvalidTransition(f"The API key {api_key.prefix} is already revoked.")
        api_key.revoked_at = now
        audit_record(
            actor=actor,
            action="api_key.revoked",
            target=api_key,
            details={"user_id": api_key.user_id, "prefix": api_key.prefix, "name": api_key.name},
        )
    return api_key


def merchant_api_grant(*, user: Any, actor: Any) -> bool:
    """Give ``user`` the ``payments.use_merchant_api`` permission; False when it already had it directly."""
    permission = Permission.objects.get(content_type__app_label="payments", codename="use_merchant_api")
    with transaction.atomic():
        if user.user_permissions.filter(pk=permission.pk).exists():
            return False
        user.user_permissions.add(permission)
        audit_record(
            actor=actor,
            action="api.merchant_permission_granted",
            target=user,
            details={"permission": "payments.use_merchant_api"},
        )
    return True


# ------------------------------------------------------------------------------------ customers


def merchant_customer_link(
    *, merchant: Any, customer: Customer, actor: Any, request: HttpRequest | None = None
) -> MerchantCustomer:
    """Allow ``merchant`` to charge ``customer`` (idempotent; audited when the link is new)."""
    with transaction.atomic():
        # get_or_create retries the read when a concurrent insert wins, so a race never raises.
        link, created = MerchantCustomer.objects.get_or_create(merchant=merchant, customer=customer)
        if created:
            audit_record(
                actor=actor,
                action="api.merchant_customer_linked",
                target=customer,
                details={"merchant_id": merchant.pk},
                request=request,
            )
    return link


@transaction.atomic
def merchant_customer_create(*, merchant: Any, request: HttpRequest | None = None, **values: Any) -> Customer:
    """A customer created by a merchant through the API, linked to it."""
    customer = customer_create(actor=merchant, request=request, **values)
    merchant_customer_link(merchant=merchant, customer=customer, actor=merchant, request=request)
    return customer


def _merchant_customer(merchant: Any, customer_id: int) -> Customer:
    customer = Customer.objects.filter(pk=customer_id, merchant_links__merchant=merchant).first()
    if customer is None:
        # The same answer for a customer that does not exist and one of another merchant.
        raise ValidationFailed(f"No such customer: {customer_id}.", field="customer")
    return customer


# ---------------------------------------------------------------------------------------- reads


def merchant_payments(*, merchant: Any) -> QuerySet[Payment]:
    """The merchant's payments with their refunds (one query each), newest first."""
    return (
        Payment.objects.filter(merchant=merchant)
        .select_related("customer")
        .prefetch_related(Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "pk")))
        .order_by("-created_at", "-pk")
    )


def merchant_payment_get(*, merchant: Any, public_id: str) -> Payment:
    payment = merchant_payments(merchant=merchant).filter(public_id=public_id).first()
    if payment is None:
        # Also for another merchant's payment: its existence is not revealed.
        raise NotFound(f"No such payment: {public_id}.")
    return payment


# ------------------------------------------------------------------------------------- payments


def _valid_amount(amount_minor: int, field: str = "amount_minor") -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValidationFailed("The amount must be a positive integer of minor units (cents).", field=field)
    if amount_minor > settings.API_MAX_AMOUNT_MINOR:
        raise ValidationFailed(f"The amount may not exceed {settings.API_MAX_AMOUNT_MINOR} minor units.", field=field)
    return amount_minor


def _valid_currency(currency: str) -> str:
    try:
        return currency_code(currency)
    except MoneyError as error:
        raise ValidationFailed(str(error), field="currency") from None


def _ensure_configured(gateway: str) -> None:
    """Refuse before anything is written when the gateway has no credentials."""
    try:
        if gateway == Gateway.STRIPE:
            stripe_adapter.stripe_client()
        else:
            braintree_adapter.braintree_gateway()
    except GatewayError as error:
        logger.error("merchant API: %s is not configured: %s", gateway, error)
        raise GatewayUnavailable(f"The {gateway} gateway is not available at the moment.") from None


def _stripe_time(value: Any) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) and value > 0 else timezone.now()


def _braintree_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return timezone.now()


def _stripe_id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


_STRIPE_INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_confirmation": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.REQUIRES_CAPTURE,
    "canceled": PaymentStatus.CANCELED,
    "succeeded": PaymentStatus.SUCCEEDED,
}


def _stripe_intent_facts(intent: dict[str, Any], declined: GatewayError | None) -> PaymentFacts:
    """The same facts the payment_intent.* webhooks give (payments.handlers.stripe)."""
    error = intent.get("last_payment_error") or {}
    status = _STRIPE_INTENT_STATUS.get(str(intent.get("status")), PaymentStatus.PENDING)
    if intent.get("status") == "requires_payment_method" and (error or declined):
        status = PaymentStatus.FAILED
    metadata = intent.get("metadata") or {}
    facts = PaymentFacts(
        gateway=Gateway.STRIPE,
        gateway_payment_id=str(intent["id"]),
        currency=currency_code(str(intent["currency"])),
        # The intent's creation time: an answer never outranks a webhook about a later change.
        occurred_at=_stripe_time(intent.get("created")),
        amount_minor=int(intent["amount"]),
        status=status,
        gateway_charge_id=_stripe_id(intent.get("latest_charge")),
        email=str(intent.get("receipt_email") or "").lower(),
        description=str(intent.get("description") or ""),
        metadata={str(k)[:40]: str(v)[:500] for k, v in metadata.items()} if isinstance(metadata, dict) else {},
    )
    if status == PaymentStatus.SUCCEEDED:
        facts.amount_captured_minor = int(intent.get("amount_received") or intent["amount"])
    if status == PaymentStatus.FAILED:
        facts.failure_code = str(
            error.get("decline_code") or error.get("code") or (declined.code if declined else "") or "payment_failed"
        )
        facts.failure_message = str(error.get("message") or (str(declined) if declined else ""))
    return facts


_BRAINTREE_SALE_STATUS = {
    "authorizing": PaymentStatus.PROCESSING,
    "authorized": PaymentStatus.REQUIRES_CAPTURE,
    "submitted_for_settlement": PaymentStatus.SUCCEEDED,
    "settling": PaymentStatus.SUCCEEDED,
    "settlement_pending": PaymentStatus.SUCCEEDED,
    "settled": PaymentStatus.SUCCEEDED,
    "settlement_confirmed": PaymentStatus.SUCCEEDED,
    "processor_declined": PaymentStatus.FAILED,
    "gateway_rejected": PaymentStatus.FAILED,
    "failed": PaymentStatus.FAILED,
    "settlement_declined": PaymentStatus.FAILED,
    "voided": PaymentStatus.CANCELED,
}


def _braintree_sale_facts(transaction_: Any) -> PaymentFacts:
    """The same facts Braintree's notifications give (payments.handlers.braintree)."""
    status = _BRAINTREE_SALE_STATUS.get(str(transaction_.status), PaymentStatus.PROCESSING)
    occurred_at = _braintree_time(getattr(transaction_, "created_at", None))
    return braintree_sale_facts(transaction_, occurred_at, status)


def _payment_open(
    *,
    merchant: Any,
    gateway: str,
    amount_minor: int,
    currency: str,
    customer: Customer | None,
    description: str,
    request: HttpRequest | None,
) -> Payment:
    with transaction.atomic(durable=True):
        payment = Payment(
            gateway=gateway,
            merchant=merchant,
            customer=customer,
            amount_minor=amount_minor,
            currency=currency,
            description=description,
            status=PaymentStatus.PENDING,
        )
        # Unique with the gateway; replaced by the gateway's id once it answers. No gateway id
        # starts with "api:", so a webhook never matches the placeholder.
        payment.gateway_payment_id = f"api:{payment.public_id}"
        payment.metadata = _payment_metadata(payment)
        payment.save(force_insert=True)
        audit_record(
            actor=merchant,
            action="payment.requested",
            target=payment,
            details={
                "payment_id": payment.public_id,
                "gateway": gateway,
                "amount_minor": amount_minor,
                "currency": currency,
                "customer_id": customer.pk if customer else None,
            },
            request=request,
        )
    return payment


def _payment_metadata(payment: Payment) -> dict[str, str]:
    metadata = {"payment_reference": payment.public_id}
    if payment.customer_id is not None:
        # payments.services reads it back from webhooks to find our customer.
        metadata["customer_reference"] = str(payment.customer_id)
    return metadata


def _payment_attach(payment_pk: int, gateway: str, gateway_payment_id: str) -> Payment:
    """Give our pending row the gateway's id, or merge it into the row a webhook created meanwhile.

    Runs inside the caller's transaction. Our row is older (smaller pk) and locked first.
    """
    payment = Payment.objects.select_for_update().get(pk=payment_pk)
    if payment.gateway_payment_id == gateway_payment_id:
        return payment
    other = Payment.objects.select_for_update().filter(gateway=gateway, gateway_payment_id=gateway_payment_id).first()
    if other is None:
        try:
            with transaction.atomic():
                Payment.objects.filter(pk=payment.pk).update(
                    gateway_payment_id=gateway_payment_id, updated_at=timezone.now()
                )
            payment.gateway_payment_id = gateway_payment_id
            return payment
        except IntegrityError:
            # A webhook created the row between our check and our update.
            other = Payment.objects.select_for_update().get(gateway=gateway, gateway_payment_id=gateway_payment_id)
    return _payment_merge(ours=payment, into=other)


def _payment_merge(*, ours: Payment, into: Payment) -> Payment:
    """A webhook about our payment was applied before the gateway's answer reached us: its row
    (which may already carry ledger entries, refunds and events) takes over our identity."""
    if into.merchant_id not in (None, ours.merchant_id):
        raise InvalidTransition(f"Gateway payment {into.gateway_payment_id} belongs to another merchant.")
    public_id, ours_pk = ours.public_id, ours.pk
    values = {
        "merchant_id": ours.merchant_id,
        "customer_id": into.customer_id or ours.customer_id,
        "description": into.description or ours.description,
        "metadata": {**ours.metadata, **into.metadata},
        "created_at": min(into.created_at, ours.created_at),
        "updated_at": timezone.now(),
    }
    ours.delete()  # nothing refers to a pending row that never had a gateway id
    Payment.objects.filter(pk=into.pk).update(public_id=public_id, **values)
    into.refresh_from_db()
    audit_record(
        actor=ours.merchant,
        action="payment.merged_with_webhook_row",
        target=into,
        details={"payment_id": public_id, "removed_row": ours_pk, "gateway_payment_id": into.gateway_payment_id},
    )
    return into


def _payment_apply_answer(payment: Payment, facts: PaymentFacts) -> Payment:
    with transaction.atomic(durable=True):
        attached = _payment_attach(payment.pk, facts.gateway, facts.gateway_payment_id)
        payment_apply_facts(facts=facts)
        if facts.status == PaymentStatus.FAILED:
            audit_record(
                actor=attached.merchant,
                action="payment.declined",
                target=attached,
                details={"payment_id": attached.public_id, "failure_code": facts.failure_code[:100]},
            )
    return merchant_payment_get(merchant=attached.merchant, public_id=attached.public_id)


def _payment_refused(payment: Payment, error: GatewayError) -> Payment:
    """The gateway refused the request outright (no payment object exists there): the payment failed."""
    now = timezone.now()
    code = (error.code or "gateway_refused")[:100]
    with transaction.atomic(durable=True):
        updated = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.FAILED,
            status_event_at=now,
            failure_code=code,
            failure_message=str(error)[:500],
            failed_at=now,
            updated_at=now,
        )
        if updated:
            audit_record(
                actor=payment.merchant,
                action="payment.gateway_refused",
                target=payment,
                details={"payment_id": payment.public_id, "failure_code": code},
            )
    return merchant_payment_get(merchant=payment.merchant, public_id=payment.public_id)


def checkout_payment_create(
    *,
    merchant: Any,
    gateway: str,
    amount_minor: int,
    currency: str,
    payment_method: str,
    customer_id: int | None = None,
    description: str = "",
    capture: bool = True,
    request: HttpRequest | None = None,
) -> Payment:
    """Charge a payment method through a gateway for ``merchant``.

    Returns the payment in the state the gateway's answer gives it: succeeded, failed with the
    decline code, requires_action, requires_capture... Raises GatewayUnavailable (the payment
    stays pending) when the gateway cannot be reached.
    """
    if gateway not in Gateway.values:
        raise ValidationFailed(f"Unknown gateway {gateway!r}: use one of {Gateway.values}.", field="gateway")
    amount_minor = _valid_amount(amount_minor)
    currency = _valid_currency(currency)
    if not payment_method or len(payment_method) > 255:
        raise ValidationFailed("A payment method (1 to 255 characters) is required.", field="payment_method")
    customer = _merchant_customer(merchant, customer_id) if customer_id is not None else None
    if customer is not None and customer.status == Customer.Status.FROZEN:
        raise CustomerFrozen(f"Customer {customer.pk} is frozen by compliance; payments for them are refused.")
    if gateway == Gateway.BRAINTREE:
        # A Braintree merchant account settles in one currency (BRAINTREE_CURRENCY).
        account_currency = currency_code(settings.BRAINTREE_CURRENCY)
        if currency != account_currency:
            raise ValidationFailed(
                f"Braintree payments are in {account_currency}, the merchant account's currency.", field="currency"
            )
        if not capture:
            raise ValidationFailed("Braintree payments are captured at once; capture=false is not supported.")
    _ensure_configured(gateway)
    payment = _payment_open(
        merchant=merchant,
        gateway=gateway,
        amount_minor=amount_minor,
        currency=currency,
        customer=customer,
        description=description,
        request=request,
    )
    try:
        if gateway == Gateway.STRIPE:
            answer = stripe_adapter.create_payment_intent(
                amount_minor=amount_minor,
                currency=currency,
                payment_method=payment_method,
                metadata=_payment_metadata(payment),
                # Stripe answers a repeated request (the SDK's network retries) with the first intent.
                idempotency_key=f"payment-{payment.public_id}",
                description=description,
                capture=capture,
            )
            facts = _stripe_intent_facts(answer["intent"], answer["declined"])
        else:
            answer = braintree_adapter.create_sale(
                amount_minor=amount_minor,
                currency=currency,
                payment_method_nonce=payment_method,
                order_id=payment.public_id,
            )
            facts = _braintree_sale_facts(answer["transaction"])
    except GatewayError as error:
        if error.retryable:
            logger.warning("merchant API: %s unreachable for payment %s: %s", gateway, payment.public_id, error)
            raise GatewayUnavailable(
                f"The {gateway} gateway could not be reached. Payment {payment.public_id} stays pending until "
                "the gateway reports its outcome; check it with GET /api/payments/{id}.",
                extra={"payment_id": payment.public_id},
            ) from None
        logger.warning("merchant API: %s refused payment %s: %s", gateway, payment.public_id, error)
        return _payment_refused(payment, error)
    return _payment_apply_answer(payment, facts)


# -------------------------------------------------------------------------------------- refunds


_STRIPE_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}
_BRAINTREE_REFUND_STATUS = {
    "settled": RefundStatus.SUCCEEDED,
    "settlement_confirmed": RefundStatus.SUCCEEDED,
    "processor_declined": RefundStatus.FAILED,
    "gateway_rejected": RefundStatus.FAILED,
    "failed": RefundStatus.FAILED,
    "settlement_declined": RefundStatus.FAILED,
    "voided": RefundStatus.CANCELED,
}


def _refund_open(
    *,
    merchant: Any,
    payment_public_id: str,
    amount_minor: int | None,
    reason: str,
    method: RefundMethod,
    request: HttpRequest | None,
) -> tuple[Payment, Refund]:
    with transaction.atomic(durable=True):
        payment = Payment.objects.select_for_update().filter(merchant=merchant, public_id=payment_public_id).first()
        if payment is None:
            raise NotFound(f"No such payment: {payment_public_id}.")
        if payment.status != PaymentStatus.SUCCEEDED:
            raise PaymentNotRefundable(f"Only a succeeded payment can be refunded; payment is {payment.status}.")
        if payment.customer is not None and payment.customer.status == Customer.Status.FROZEN:
            raise CustomerFrozen(
                f"Customer {payment.customer_id} is frozen by compliance; refunds to them are refused."
            )
        reserved = (
            payment.refunds.filter(status__in=[RefundStatus.PENDING, RefundStatus.SUCCEEDED]).aggregate(
                total=Sum("amount_minor")
            )["total"]
            or 0
        )
        refundable = payment.amount_captured_minor - reserved
        if refundable <= 0:
            raise PaymentNotRefundable("The payment is already fully refunded (or refunds for all of it are pending).")
        amount = refundable if amount_minor is None else _valid_amount(amount_minor)
        if amount > refundable:
            raise RefundExceedsRefundable(
                f"amount_minor {amount} exceeds what can still be refunded: {refundable} "
                f"(captured {payment.amount_captured_minor}, refunded or being refunded {reserved}).",
                field="amount_minor",
            )
        if method == RefundMethod.VOID and (amount != payment.amount_captured_minor or reserved):
            raise PaymentNotSettled(
                "Braintree refunds a transaction only after it settles; refund the whole amount to void it, "
                "or retry after settlement."
            )
        now = timezone.now()
        refund = Refund.objects.create(
            payment=payment,
            method=method,
            amount_minor=amount,
            currency=payment.currency,
            status=RefundStatus.PENDING,
            reason=reason[:100],
            requested_by=merchant,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            actor=merchant,
            action="refund.requested",
            target=refund,
            details={
                "refund_id": refund.public_id,
                "payment_id": payment.public_id,
                "amount_minor": amount,
                "currency": payment.currency,
                "method": method,
            },
            request=request,
        )
    return payment, refund


def _refund_refused(refund: Refund, error: GatewayError) -> Refund:
    now = timezone.now()
    with transaction.atomic(durable=True):
        updated = Refund.objects.filter(pk=refund.pk, status=RefundStatus.PENDING, gateway_refund_id="").update(
            status=RefundStatus.FAILED, status_event_at=now, failure_reason=str(error)[:500], updated_at=now
        )
        if updated:
            audit_record(
                actor=refund.requested_by,
                action="refund.gateway_refused",
                target=refund,
                details={"refund_id": refund.public_id, "code": error.code[:100]},
            )
    refund.refresh_from_db()
    return refund


def checkout_refund_create(
    *,
    merchant: Any,
    payment_public_id: str,
    amount_minor: int | None = None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Refund:
    """Refund (part of) a merchant's succeeded payment; ``amount_minor`` None refunds what remains.

    The pending refund is committed before the gateway is called, so it counts against the
    refundable amount while the gateway works: two concurrent refunds never exceed the capture.

    A Braintree transaction that has not settled cannot be refunded, only voided, in full: its
    status is asked from Braintree first (our row may be stale), and a full refund becomes a void
    (``method`` "void"; the payment ends canceled) while a partial one is refused with
    ``payment_not_settled`` before anything is written.
    """
    known = (
        Payment.objects.filter(merchant=merchant, public_id=payment_public_id)
        .values_list("gateway", "gateway_payment_id", "status")
        .first()
    )
    if known is None:
        raise NotFound(f"No such payment: {payment_public_id}.")
    gateway, gateway_payment_id, status = known
    _ensure_configured(gateway)
    method = RefundMethod.REFUND
    if gateway == Gateway.BRAINTREE and status == PaymentStatus.SUCCEEDED:
        method = _braintree_refund_method(gateway_payment_id)
    payment, refund = _refund_open(
        merchant=merchant,
        payment_public_id=payment_public_id,
        amount_minor=amount_minor,
        reason=reason,
        method=method,
        request=request,
    )
    if method == RefundMethod.VOID:
        return _braintree_void(payment, refund)
    return _refund_at_gateway(payment, refund)


def _braintree_refund_method(transaction_id: str) -> RefundMethod:
    """Void or refund, by the transaction's status at Braintree now."""
    try:
        transaction_ = braintree_adapter.find_transaction(transaction_id)
    except GatewayError as error:
        logger.warning("merchant API: braintree transaction %s not found or unreachable: %s", transaction_id, error)
        raise GatewayUnavailable(
            "The braintree gateway could not tell the transaction's status; nothing was refunded. Retry the "
            "request with a new Idempotency-Key."
        ) from None
    status = str(transaction_.status)
    if status in braintree_adapter.VOIDABLE_STATUSES:
        return RefundMethod.VOID
    if status in braintree_adapter.REFUNDABLE_STATUSES:
        return RefundMethod.REFUND
    raise PaymentNotRefundable(f"The Braintree transaction is {status}: it can be neither refunded nor voided.")


def _refund_at_gateway(payment: Payment, refund: Refund) -> Refund:
    try:
        if payment.gateway == Gateway.STRIPE:
            answer = stripe_adapter.create_refund(
                payment_intent_id=payment.gateway_payment_id,
                amount_minor=refund.amount_minor,
                metadata={"refund_reference": refund.public_id, "payment_reference": payment.public_id},
                idempotency_key=f"refund-{refund.public_id}",
            )
            facts = RefundFacts(
                gateway=Gateway.STRIPE,
                gateway_payment_id=payment.gateway_payment_id,
                gateway_refund_id=str(answer["id"]),
                amount_minor=int(answer["amount"]),
                currency=currency_code(str(answer["currency"])),
                status=_STRIPE_REFUND_STATUS.get(str(answer.get("status")), RefundStatus.PENDING),
                occurred_at=_stripe_time(answer.get("created")),
                failure_reason=str(answer.get("failure_reason") or ""),
                refund_public_id=refund.public_id,
            )
        else:
            credit = braintree_adapter.create_refund(
                transaction_id=payment.gateway_payment_id,
                amount_minor=refund.amount_minor,
                currency=payment.currency,
                order_id=refund.public_id,
            )
            facts = _braintree_credit_facts(payment, refund, credit)
    except GatewayError as error:
        if error.retryable:
            _refund_unreachable(payment, refund, error)
        logger.warning("merchant API: %s refused refund %s: %s", payment.gateway, refund.public_id, error)
        return _refund_refused(refund, error)
    with transaction.atomic(durable=True):
        applied = refund_apply_facts(facts=facts)
    return applied


def _refund_unreachable(payment: Payment, refund: Refund, error: GatewayError) -> NoReturn:
    logger.warning("merchant API: %s unreachable for refund %s: %s", payment.gateway, refund.public_id, error)
    raise GatewayUnavailable(
        f"The {payment.gateway} gateway could not be reached. Refund {refund.public_id} stays pending "
        "(it counts against the refundable amount) until the gateway reports its outcome.",
        extra={"refund_id": refund.public_id, "payment_id": payment.public_id},
    ) from None


def _braintree_void(payment: Payment, refund: Refund) -> Refund:
    """Void the whole unsettled transaction; a refund instead if it settled since we looked."""
    try:
        voided = braintree_adapter.void_transaction(payment.gateway_payment_id)
    except GatewayError as error:
        if error.code == braintree_adapter.CANNOT_VOID:
            # It settled (or started settling) between the status check and the void: the whole
            # amount is refunded instead, which is what the merchant asked for.
            logger.info("merchant API: braintree refused to void %s (%s); refunding it", refund.public_id, error)
            _refund_method_changed(refund, RefundMethod.REFUND)
            return _refund_at_gateway(payment, refund)
        if not error.retryable:
            logger.warning("merchant API: braintree refused void %s: %s", refund.public_id, error)
            return _refund_refused(refund, error)
        voided = _voided_meanwhile(payment.gateway_payment_id)
        if voided is None:
            # Braintree sends no notification for a void: the refund stays pending until the beat
            # job payments.resolve_pending_refunds looks at the sale again (checkout_refund_resolve).
            _refund_unreachable(payment, refund, error)
    return _void_recorded(payment, refund, voided)


def _void_recorded(payment: Payment, refund: Refund, voided: Any) -> Refund:
    """Braintree voided the sale: the payment is canceled (its capture reversed) and the refund succeeded."""
    occurred_at = _braintree_time(getattr(voided, "updated_at", None))
    with transaction.atomic(durable=True):
        payment_apply_facts(
            facts=PaymentFacts(
                gateway=Gateway.BRAINTREE,
                gateway_payment_id=payment.gateway_payment_id,
                currency=payment.currency,
                occurred_at=occurred_at,
                status=PaymentStatus.CANCELED,
            )
        )
        applied = refund_apply_facts(
            facts=RefundFacts(
                gateway=Gateway.BRAINTREE,
                gateway_payment_id=payment.gateway_payment_id,
                # A void has no gateway object of its own: the voided transaction names it.
                gateway_refund_id=payment.gateway_payment_id,
                amount_minor=refund.amount_minor,
                currency=payment.currency,
                status=RefundStatus.SUCCEEDED,
                occurred_at=occurred_at,
                refund_public_id=refund.public_id,
            )
        )
        audit_record(
            actor=refund.requested_by,
            action="payment.voided",
            target=payment,
            details={
                "payment_id": payment.public_id,
                "refund_id": refund.public_id,
                "amount_minor": refund.amount_minor,
            },
        )
    return applied


def _braintree_credit_facts(payment: Payment, refund: Refund, credit: Any) -> RefundFacts:
    """A Braintree credit (the refund transaction of a sale) as the facts of our refund."""
    return RefundFacts(
        gateway=Gateway.BRAINTREE,
        gateway_payment_id=payment.gateway_payment_id,
        gateway_refund_id=str(credit.id),
        amount_minor=to_minor(credit.amount, payment.currency),
        currency=payment.currency,
        status=_BRAINTREE_REFUND_STATUS.get(str(credit.status), RefundStatus.PENDING),
        occurred_at=_braintree_time(getattr(credit, "created_at", None)),
        refund_public_id=refund.public_id,
    )


# A Braintree refund or void left pending without a gateway id (its answer was lost) is looked at
# again once it is this old: well past the SDK's timeouts, so a request still on its way is not raced.
PENDING_REFUND_GRACE = timedelta(minutes=10)


def checkout_pending_refund_ids(limit: int = 100) -> list[int]:
    """Braintree refunds and voids still pending without a gateway id past ``PENDING_REFUND_GRACE``.

    Braintree sends no notification for a void or a card refund: nothing else would settle them.
    """
    return list(
        Refund.objects.filter(
            payment__gateway=Gateway.BRAINTREE,
            status=RefundStatus.PENDING,
            gateway_refund_id="",
            created_at__lte=timezone.now() - PENDING_REFUND_GRACE,
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def checkout_refund_resolve(*, refund_id: int) -> Refund:
    """Settle a Braintree refund or void left pending, from the sale as Braintree has it now.

    A credit of the sale carrying the refund's reference (``order_id``): the refund went through,
    its answer was lost; it is recorded. Otherwise, for a void: the sale voided → recorded; still
    voidable → voided now; settled meanwhile → the whole amount refunded instead, as the merchant
    asked. For a refund: the sale refundable → refunded now. Any other status (voided, failed,
    refunded elsewhere): the refund fails with that status as its reason. Braintree unreachable:
    left pending for the next run. One resolver at a time per refund; every outcome is audited as
    the API's are.
    """
    lock = f"payments:refund-resolve:{refund_id}"
    if not cache.add(lock, 1, timeout=300):
        return Refund.objects.get(pk=refund_id)
    try:
        refund = Refund.objects.select_related("payment", "requested_by").get(pk=refund_id)
        payment = refund.payment
        if refund.status != RefundStatus.PENDING or refund.gateway_refund_id or payment.gateway != Gateway.BRAINTREE:
            return refund
        try:
            sale = braintree_adapter.find_transaction(payment.gateway_payment_id)
            credit = _braintree_credit_of(sale, refund)
        except GatewayError as error:
            logger.log(
                logging.INFO if error.retryable else logging.WARNING,
                "pending %s %s: braintree did not answer (%s); looked at again later",
                refund.method,
                refund.public_id,
                error,
            )
            return refund
        status = str(sale.status)
        logger.info("pending %s %s: the braintree sale is %s", refund.method, refund.public_id, status)
        try:
            if credit is not None:
                if refund.method == RefundMethod.VOID:
                    _refund_method_changed(refund, RefundMethod.REFUND)
                with transaction.atomic(durable=True):
                    return refund_apply_facts(facts=_braintree_credit_facts(payment, refund, credit))
            if refund.method == RefundMethod.VOID and status == "voided":
                return _void_recorded(payment, refund, sale)
            if refund.method == RefundMethod.VOID and status in braintree_adapter.VOIDABLE_STATUSES:
                return _braintree_void(payment, refund)
            if status in braintree_adapter.REFUNDABLE_STATUSES:
                if refund.method == RefundMethod.VOID:
                    _refund_method_changed(refund, RefundMethod.REFUND)
                return _refund_at_gateway(payment, refund)
        except GatewayUnavailable:
            refund.refresh_from_db()
            return refund
        return _refund_refused(refund, GatewayError(f"the Braintree sale is {status}", code=status))
    finally:
        cache.delete(lock)


def _braintree_credit_of(sale: Any, refund: Refund) -> Any:
    """The sale's credit made for this refund (its ``order_id`` is the refund's reference), if any."""
    for credit_id in getattr(sale, "refund_ids", None) or []:
        credit = braintree_adapter.find_transaction(str(credit_id))
        if str(getattr(credit, "order_id", "") or "") == refund.public_id:
            return credit
    return None


def _voided_meanwhile(transaction_id: str) -> Any:
    """After an unanswered void: the transaction if Braintree voided it after all, else None."""
    try:
        transaction_ = braintree_adapter.find_transaction(transaction_id)
    except GatewayError:
        return None
    return transaction_ if str(transaction_.status) == "voided" else None


def _refund_method_changed(refund: Refund, method: RefundMethod) -> None:
    with transaction.atomic(durable=True):
        if Refund.objects.filter(pk=refund.pk, status=RefundStatus.PENDING).update(
            method=method, updated_at=timezone.now()
        ):
            audit_record(
                actor=refund.requested_by,
                action="refund.method_changed",
                target=refund,
                details={"refund_id": refund.public_id, "from": refund.method, "to": method},
            )
    refund.method = method


# ---------------------------------------------------------------------------------- idempotency

IDEMPOTENCY_KEY_MAX_LENGTH = 255


@dataclass(frozen=True)
class IdempotencyClaim:
    """This request runs; its response is stored under the record when it finishes."""

    record_id: int
    token: str


@dataclass(frozen=True)
class IdempotencyReplay:
    """An earlier request with the same key and body finished: send its response again."""

    status_code: int
    body: str


def idempotency_request_hash(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def _valid_idempotency_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise IdempotencyKeyInvalid(
            "Send an Idempotency-Key header (a unique string such as a UUID, at most 255 characters) with every POST.",
            field="Idempotency-Key",
        )
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable() or not key.isascii():
        raise IdempotencyKeyInvalid(
            "The Idempotency-Key must be 1 to 255 printable ASCII characters.", field="Idempotency-Key"
        )
    return key


def idempotency_begin(
    *, user: Any, key: str | None, method: str, path: str, request_hash: str
) -> IdempotencyClaim | IdempotencyReplay:
    """Claim ``key`` for this request, or say what an earlier request with it answered.

    The row is inserted with ``ON CONFLICT DO NOTHING``, so concurrent duplicates never raise:
    exactly one of them inserts it and runs; the others see it running (409) or finished (replay).
    """
    key = _valid_idempotency_key(key)
    now = timezone.now()
    token = secrets.token_hex(16)
    with transaction.atomic():
        IdempotencyRecord.objects.bulk_create(
            [
                IdempotencyRecord(
                    user=user,
                    key=key,
                    request_hash=request_hash,
                    method=method[:8],
                    path=path[:255],
                    claim_token=token,
                    created_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        record = IdempotencyRecord.objects.select_for_update().get(user=user, key=key)
        if record.claim_token != token and record.created_at < now - _idempotency_ttl():
            # Expired: the key may be used again, as if new.
            record.request_hash, record.method, record.path = request_hash, method[:8], path[:255]
            record.claim_token, record.created_at = token, now
            record.status_code, record.response_body, record.completed_at = None, "", None
            record.save()
        if record.claim_token == token:
            return IdempotencyClaim(record_id=record.pk, token=token)
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request (method, path or body). "
            "Use a new key for a new request."
        )
    if record.status_code is None:
        raise IdempotencyRequestInProgress(
            "A request with this Idempotency-Key is still in progress; retry in a moment to get its response."
        )
    return IdempotencyReplay(status_code=record.status_code, body=record.response_body)


def idempotency_finish(*, claim: IdempotencyClaim, status_code: int, body: str) -> None:
    IdempotencyRecord.objects.filter(pk=claim.record_id, claim_token=claim.token, status_code__isnull=True).update(
        status_code=status_code, response_body=body, completed_at=timezone.now()
    )


def idempotency_release(*, claim: IdempotencyClaim) -> None:
    """Forget the key: the request changed nothing (it was refused), so it may be sent again."""
    IdempotencyRecord.objects.filter(pk=claim.record_id, claim_token=claim.token, status_code__isnull=True).delete()


def _idempotency_ttl() -> timedelta:
    return timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)


def idempotency_records_purge(*, batch_size: int = 5000) -> int:
    """Delete expired records (run it daily, e.g. from Celery beat); returns how many went."""
    cutoff = timezone.now() - _idempotency_ttl()
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]
