"""Braintree adapter: a configured BraintreeGateway and the calls the app makes."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import braintree

# Not exported by braintree.exceptions: `except braintree.exceptions.BraintreeError` raised AttributeError.
from braintree.exceptions.braintree_error import BraintreeError
from django.conf import settings

from fintech.core.money import from_minor

from . import GatewayError, GatewayNotConfigured

if TYPE_CHECKING:
    from payments.models import Payment

_gateways: dict[tuple, braintree.BraintreeGateway] = {}


def _environment(value: str) -> braintree.Environment:
    named = {"sandbox": braintree.Environment.Sandbox, "production": braintree.Environment.Production}
    if value in named:
        return named[value]
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise GatewayNotConfigured(
            f"BRAINTREE_ENVIRONMENT must be sandbox, production or a URL, not {value!r}", code="not_configured"
        )
    port = str(url.port or (443 if url.scheme == "https" else 80))
    base = f"{url.scheme}://{url.hostname}:{port}"
    return braintree.Environment("local", url.hostname, port, base, url.scheme == "https", None)


def braintree_gateway() -> braintree.BraintreeGateway:
    """The configured gateway. Webhook verification needs only the key pair."""
    key = (
        settings.BRAINTREE_ENVIRONMENT,
        settings.BRAINTREE_MERCHANT_ID,
        settings.BRAINTREE_PUBLIC_KEY,
        settings.BRAINTREE_PRIVATE_KEY,
    )
    if key not in _gateways:
        if not (settings.BRAINTREE_PUBLIC_KEY and settings.BRAINTREE_PRIVATE_KEY):
            raise GatewayNotConfigured(
                "Braintree is not configured: set BRAINTREE_MERCHANT_ID, BRAINTREE_PUBLIC_KEY, BRAINTREE_PRIVATE_KEY",
                code="not_configured",
            )
        _gateways[key] = braintree.BraintreeGateway(
            braintree.Configuration(
                environment=_environment(settings.BRAINTREE_ENVIRONMENT),
                merchant_id=settings.BRAINTREE_MERCHANT_ID or "unset",
                public_key=settings.BRAINTREE_PUBLIC_KEY,
                private_key=settings.BRAINTREE_PRIVATE_KEY,
                # Network failures raise the SDK's own errors (caught below), not requests' exceptions.
                wrap_http_exceptions=True,
            )
        )
    return _gateways[key]


# Errors after which the same request may succeed later; the others (authentication, not found,
# configuration) will fail again until someone changes something.
_TRANSIENT_ERRORS = (
    braintree.exceptions.ServerError,
    braintree.exceptions.ServiceUnavailableError,
    braintree.exceptions.TooManyRequestsError,
    braintree.exceptions.GatewayTimeoutError,
    braintree.exceptions.RequestTimeoutError,
    braintree.exceptions.UnexpectedError,  # includes connection errors and timeouts
)


def _request_error(exc: Exception) -> GatewayError:
    return GatewayError(
        f"Braintree request failed: {type(exc).__name__}",
        retryable=isinstance(exc, _TRANSIENT_ERRORS),
    )


def _result_error(result: Any) -> GatewayError:
    transaction = getattr(result, "transaction", None)
    code = str(getattr(transaction, "processor_response_code", "") or "") if transaction else ""
    return GatewayError(str(getattr(result, "message", "") or "Braintree refused the request"), code=code)


def create_sale(
    *,
    amount_minor: int,
    currency: str,
    payment_method_nonce: str,
    order_id: str,
    custom_fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A sale submitted for settlement; a processor decline returns the transaction with its code."""
    try:
        result = braintree_gateway().transaction.sale(
            {
                "amount": str(from_minor(amount_minor, currency)),
                "payment_method_nonce": payment_method_nonce,
                "order_id": order_id,
                "options": {"submit_for_settlement": True},
            }
        )
    except BraintreeError as exc:
        raise _request_error(exc) from None
    transaction = getattr(result, "transaction", None)
    if result.is_success:
        return {"transaction": transaction, "declined": None}
    if transaction is not None:
        return {"transaction": transaction, "declined": _result_error(result)}
    raise _result_error(result)


def create_refund(*, transaction_id: str, amount_minor: int, currency: str, order_id: str = "") -> Any:
    """A refund (credit) of a sale; ``order_id`` is our refund reference, echoed in its notifications."""
    options = {"amount": str(from_minor(amount_minor, currency))}
    if order_id:
        options["order_id"] = order_id
    try:
        result = braintree_gateway().transaction.refund(transaction_id, options)
    except BraintreeError as exc:
        raise _request_error(exc) from None
    if not result.is_success:
        raise _result_error(result)
    return result.transaction


# Braintree voids a transaction only before it settles (and only in full); it refunds one only
# once it settles (error 91506 before). Settling and settlement_pending count as settled here:
# Braintree answers a refund of those itself (91574 on merchant accounts that do not allow it).
VOIDABLE_STATUSES = frozenset({"authorized", "submitted_for_settlement"})
REFUNDABLE_STATUSES = frozenset({"settling", "settlement_pending", "settled", "settlement_confirmed"})
# Validation error: "Transaction can only be voided if status is authorized, submitted_for_settlement..."
CANNOT_VOID = "91504"


def _validation_error(result: Any) -> GatewayError:
    """A refused request, coded with Braintree's first validation error (e.g. 91504)."""
    errors = getattr(getattr(result, "errors", None), "deep_errors", None) or []
    code = str(getattr(errors[0], "code", "") or "") if errors else ""
    return GatewayError(str(getattr(result, "message", "") or "Braintree refused the request"), code=code)


def find_transaction(transaction_id: str) -> Any:
    """The transaction as Braintree has it now (its ``status`` decides between a void and a refund)."""
    try:
        return braintree_gateway().transaction.find(transaction_id)
    except BraintreeError as exc:
        raise _request_error(exc) from None


def void_transaction(transaction_id: str) -> Any:
    """Void a transaction that has not settled; the voided transaction, or GatewayError (91504 once settled)."""
    try:
        result = braintree_gateway().transaction.void(transaction_id)
    except BraintreeError as exc:
        raise _request_error(exc) from None
    if not result.is_success:
        raise _validation_error(result)
    return result.transaction


def retry_payment(payment: Payment) -> None:
    if not payment.subscription_id:
        raise GatewayError("only subscription charges can be retried at Braintree", code="not_retryable")
    try:
        result = braintree_gateway().subscription.retry_charge(
            payment.subscription_id, Decimal(from_minor(payment.amount_minor, payment.currency)), True
        )
    except BraintreeError as exc:
        raise _request_error(exc) from None
    if not result.is_success:
        raise _result_error(result)
