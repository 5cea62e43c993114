"""Event handlers per gateway: translate a stored event into facts and call the services."""

from ..models import Gateway, WebhookEvent
from . import braintree, stripe

_BY_PROVIDER = {Gateway.STRIPE: stripe.handle, Gateway.BRAINTREE: braintree.handle}


def handle(event: WebhookEvent) -> bool:
    """Apply ``event``; False when its type is not one we act on."""
    return _BY_PROVIDER[Gateway(event.provider)](event)
