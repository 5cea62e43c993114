"""Event handlers per gateway: translate a stored event into facts and call the services."""

from collections.abc import Callable

from ..models import Gateway, WebhookEvent
from . import braintree, stripe

_BY_PROVIDER = {Gateway.STRIPE: stripe.handle, Gateway.BRAINTREE: braintree.handle}
_PARTITION_KEY: dict[str, Callable[[WebhookEvent], str]] = {Gateway.STRIPE: stripe.partition_key}


def handle(event: WebhookEvent) -> bool:
    """Apply ``event``; False when its type is not one we act on."""
    return _BY_PROVIDER[Gateway(event.provider)](event)


def partition_key(event: WebhookEvent) -> str:
    """A key shared by the events that change the same payment (or payout), read from the payload.

    Drains working side by side never take two events with one key at once. A key that is off
    (a charge without its PaymentIntent) only costs a wait on the payment's row lock. Braintree
    names the transaction, dispute or subscription in the subject id the endpoint stored.
    """
    key_of = _PARTITION_KEY.get(event.provider)
    return f"{event.provider}:{key_of(event) if key_of else event.object_id}"
