"""Signed gateway deliveries for tests: Stripe events and Braintree notifications, as the gateways send them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

import braintree
from django.conf import settings
from django.test import Client

_counter = itertools.count(1)


def stripe_signature(body: str, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = secret or settings.STRIPE_WEBHOOK_SECRETS[0]
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_type: str, obj: dict[str, Any], *, created: int | None = None, event_id: str = "") -> dict:
    return {
        "id": event_id or f"evt_test{next(_counter):08d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def deliver_stripe(client: Client, event: dict, **headers: Any) -> Any:
    body = json.dumps(event)
    headers.setdefault("HTTP_STRIPE_SIGNATURE", stripe_signature(body))
    return client.post("/webhooks/stripe/", body, content_type="application/json", **headers)


def intent(pi: str, status: str, amount: int = 2000, currency: str = "usd", **extra: Any) -> dict:
    return {
        "id": pi,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "latest_charge": f"ch_{pi[3:]}",
        "metadata": {"order_id": f"order-{pi}"},
        "last_payment_error": None,
        **extra,
    }


def charge(pi: str, *, amount: int = 2000, captured: bool = True, status: str = "succeeded", **extra: Any) -> dict:
    return {
        "id": f"ch_{pi[3:]}",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if captured else 0,
        "amount_refunded": 0,
        "currency": "usd",
        "captured": captured,
        "status": status,
        "payment_intent": pi,
        "balance_transaction": {"id": f"txn_{pi[3:]}", "object": "balance_transaction", "fee": 88},
        "billing_details": {"email": "Payer@Example.com"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
        "metadata": {},
        "refunds": {"object": "list", "data": []},
        **extra,
    }


def refund(pi: str, refund_id: str, amount: int, status: str = "succeeded") -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "charge": f"ch_{pi[3:]}",
        "payment_intent": pi,
        "status": status,
        "reason": "requested_by_customer",
        "metadata": {},
    }


def dispute(pi: str, dispute_id: str, status: str, amount: int = 2000, **extra: Any) -> dict:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "usd",
        "charge": f"ch_{pi[3:]}",
        "payment_intent": pi,
        "reason": "fraudulent",
        "status": status,
        "created": int(time.time()) - 60,
        "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
        "balance_transactions": [],
        **extra,
    }


def payout(payout_id: str, status: str, amount: int = 5000, **extra: Any) -> dict:
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "currency": "usd",
        "arrival_date": int(time.time()) + 86400,
        "status": status,
        "failure_code": "account_closed" if status == "failed" else None,
        "failure_message": "The bank account has been closed" if status == "failed" else None,
        **extra,
    }


def braintree_gateway() -> braintree.BraintreeGateway:
    return braintree.BraintreeGateway(
        braintree.Configuration(
            environment=braintree.Environment.Sandbox,
            merchant_id=settings.BRAINTREE_MERCHANT_ID,
            public_key=settings.BRAINTREE_PUBLIC_KEY,
            private_key=settings.BRAINTREE_PRIVATE_KEY,
        )
    )


def braintree_sample(kind: str, subject_id: str) -> dict[str, str]:
    """A notification signed with this run's keys, built by the Braintree SDK's own webhook testing."""
    return braintree_gateway().webhook_testing.sample_notification(kind, subject_id)


def braintree_signed_xml(xml: str) -> dict[str, str]:
    from base64 import encodebytes

    from braintree.util.crypto import Crypto

    payload = encodebytes(xml.encode())
    signature = Crypto.sha1_hmac_hash(settings.BRAINTREE_PRIVATE_KEY, payload)
    return {"bt_signature": f"{settings.BRAINTREE_PUBLIC_KEY}|{signature}", "bt_payload": payload.decode()}


def deliver_braintree(client: Client, form: dict[str, Any]) -> Any:
    """POST the form URL-encoded, as Braintree does."""
    from urllib.parse import urlencode

    fields = {key: value.decode() if isinstance(value, bytes) else value for key, value in form.items()}
    return client.post("/webhooks/braintree/", urlencode(fields), content_type="application/x-www-form-urlencoded")
