"""Stripe adapter: a configured StripeClient and the calls the app makes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings

from . import GatewayError, GatewayNotConfigured

if TYPE_CHECKING:
    from payments.models import Payment

_clients: dict[tuple[str, str], stripe.StripeClient] = {}


def stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_API_KEY:
        raise GatewayNotConfigured("Stripe is not configured: set STRIPE_API_KEY", code="not_configured")
    key = (settings.STRIPE_API_KEY, settings.STRIPE_API_BASE)
    if key not in _clients:
        _clients[key] = stripe.StripeClient(
            settings.STRIPE_API_KEY,
            base_addresses={"api": settings.STRIPE_API_BASE},
            max_network_retries=2,
        )
    return _clients[key]


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    error = getattr(exc, "error", None)
    code = getattr(error, "decline_code", None) or getattr(error, "code", None) or getattr(exc, "code", None) or ""
    retryable = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or ((exc.http_status or 0) >= 500)
    message = getattr(error, "message", None) or exc.user_message or str(exc) or "Stripe request failed"
    return GatewayError(str(message), code=str(code), retryable=retryable)


def create_payment_intent(
    *,
    amount_minor: int,
    currency: str,
    payment_method: str,
    metadata: dict[str, str],
    idempotency_key: str,
    description: str = "",
    capture: bool = True,
) -> dict[str, Any]:
    """Create and confirm a PaymentIntent; a decline returns the intent with its last error."""
    params: dict[str, Any] = {
        "amount": amount_minor,
        "currency": currency.lower(),
        "payment_method": payment_method,
        "confirm": True,
        "metadata": metadata,
        "capture_method": "automatic" if capture else "manual",
        "payment_method_types": ["card"],
    }
    if description:
        params["description"] = description
    try:
        intent = stripe_client().v1.payment_intents.create(
            params,  # type: ignore[arg-type]  # built as a plain dict; the SDK's TypedDict is total
            {"idempotency_key": idempotency_key},
        )
    except stripe.CardError as exc:
        error = _gateway_error(exc)
        intent_data = getattr(getattr(exc, "error", None), "payment_intent", None)
        if intent_data is not None:
            return {"intent": _plain(intent_data), "declined": error}
        raise error from None
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from None
    return {"intent": _plain(intent), "declined": None}


def create_refund(*, payment_intent_id: str, amount_minor: int, metadata: dict[str, str], idempotency_key: str) -> dict:
    try:
        refund = stripe_client().v1.refunds.create(
            {"payment_intent": payment_intent_id, "amount": amount_minor, "metadata": metadata},
            {"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from None
    return _plain(refund)


def retrieve_balance_transaction(balance_transaction_id: str) -> dict:
    try:
        return _plain(stripe_client().v1.balance_transactions.retrieve(balance_transaction_id))
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from None


def retry_payment(payment: Payment) -> None:
    """Confirm the PaymentIntent again, off session, with the payment method that was declined.

    After a decline Stripe detaches the method from the intent (``payment_method`` is null) and
    keeps it on ``last_payment_error.payment_method``; confirming without one is refused.
    """
    client = stripe_client()
    try:
        current = _plain(client.v1.payment_intents.retrieve(payment.gateway_payment_id))
        method = _payment_method_id(current.get("payment_method"))
        if not method:
            last_error = current.get("last_payment_error") or {}
            method = _payment_method_id(last_error.get("payment_method"))
        if not method:
            raise GatewayError("the payment intent has no payment method to retry with", code="no_payment_method")
        intent = client.v1.payment_intents.confirm(
            payment.gateway_payment_id, params={"payment_method": method, "off_session": True}
        )
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from None
    if intent.status not in ("succeeded", "processing", "requires_capture"):
        raise GatewayError(f"payment intent is {intent.status}", code=intent.status)


def _payment_method_id(value: Any) -> str:
    """A payment method given as its id or as the expanded object."""
    if not value:
        return ""
    return value if isinstance(value, str) else str(value.get("id") or "")


def _plain(obj: Any) -> dict:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)
