"""Gateway adapters: the only code that calls the Stripe and Braintree SDKs.

Each adapter translates our requests into SDK calls and the SDK's answers and errors into ours
(``GatewayError`` with the gateway's decline code), so services never see SDK types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payments.models import Payment


class GatewayError(Exception):
    """The gateway refused or failed a request. ``code`` is its decline or error code."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code, self.retryable = code, retryable


class GatewayNotConfigured(GatewayError):
    pass


def retry_payment(payment: Payment) -> None:
    """Charge a failed payment again (dunning); raises GatewayError when declined."""
    from . import braintree as braintree_adapter
    from . import stripe as stripe_adapter

    if payment.gateway == "stripe":
        stripe_adapter.retry_payment(payment)
    else:
        braintree_adapter.retry_payment(payment)
