"""The webhook inbox: verify a gateway's delivery, store it once, hand it to a worker.

The endpoints do the least work that makes a delivery safe to acknowledge: size check,
signature check with the official SDK, a shape check, one durable ``INSERT ... ON CONFLICT DO
NOTHING`` on (provider, event_id) and the coalesced drain signal (``webhook_drain_request``).
Processing happens in ``payments.tasks.drain_webhooks``; a beat sweep re-enqueues anything the
broker lost. gunicorn serves these views through a handler of their own (``fintech.wsgi``).
Refused deliveries store nothing; each refusal is logged, and audited at most once per
provider, reason and address every few minutes, so a flood cannot fill the audit trail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import braintree
import stripe
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from fintech.core.audit import SystemActor, audit_record
from fintech.core.network import client_ip
from fintech.core.prepared import prepared_cursor, session_ended

from .gateways.braintree import braintree_gateway
from .inbox import webhook_drain_request
from .models import Gateway

logger = logging.getLogger("fintech.payments.webhooks")
security_logger = logging.getLogger("fintech.security")

# Card numbers and security codes are never stored, even if a notification carried them.
_CARD_DATA = re.compile(r"<(number|cvv)>[^<]*</\1>")
# Headers never stored with a delivery.
_DROPPED_HEADERS = {"HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION"}
REFUSAL_AUDIT_INTERVAL_SECONDS = 300


class WebhookRejected(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class VerifiedDelivery:
    provider: str
    event_id: str
    event_type: str
    object_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    # The payload as JSON text when the gateway sent it so (the verified Stripe body), stored as
    # it came instead of serialising the parsed object again.
    payload_json: str = ""


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise WebhookRejected("invalid Content-Length") from None
    if declared > limit:
        raise WebhookRejected(f"body larger than {limit} bytes", status=413)
    body = request.read(limit + 1)
    if len(body) > limit:
        raise WebhookRejected(f"body larger than {limit} bytes", status=413)
    if not body:
        raise WebhookRejected("empty body")
    return body


# ------------------------------------------------------------------------------------- Stripe


def _stripe_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    raise WebhookRejected("Stripe-Signature has no timestamp")


def verify_stripe(body: bytes, signature_header: str) -> VerifiedDelivery:
    if not settings.STRIPE_WEBHOOK_SECRETS:
        raise WebhookRejected("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRETS)", status=503)
    if not signature_header:
        raise WebhookRejected("missing Stripe-Signature header")
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    # The SDK refuses old timestamps only; a timestamp from the future is refused here.
    if _stripe_timestamp(signature_header) > time.time() + tolerance:
        raise WebhookRejected("Stripe-Signature timestamp is in the future")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("body is not UTF-8") from None
    for secret in settings.STRIPE_WEBHOOK_SECRETS:
        try:
            stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance)
            break
        except stripe.SignatureVerificationError as exc:
            if "tolerance" in str(exc):
                raise WebhookRejected("Stripe-Signature timestamp is too old") from None
    else:
        raise WebhookRejected("Stripe-Signature does not match")
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected("body is not JSON") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"].startswith("evt_")
        and len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and 0 < len(event["type"]) <= 100
        and isinstance(event.get("created"), int)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookRejected("not a Stripe event (id, type, created, data.object)")
    subject = event["data"]["object"]
    return VerifiedDelivery(
        provider=Gateway.STRIPE,
        event_id=event["id"],
        event_type=event["type"],
        object_id=str(subject.get("id") or "")[:255],
        occurred_at=datetime.fromtimestamp(event["created"], tz=UTC),
        payload=event,
        payload_json=text,
    )


# ---------------------------------------------------------------------------------- Braintree


def verify_braintree(body: bytes) -> VerifiedDelivery:
    if not (settings.BRAINTREE_PUBLIC_KEY and settings.BRAINTREE_PRIVATE_KEY):
        raise WebhookRejected("Braintree webhooks are not configured (BRAINTREE_PUBLIC_KEY/PRIVATE_KEY)", status=503)
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected("body is not a form with bt_signature and bt_payload") from None
    signature, payload = form.get("bt_signature", [""])[0], form.get("bt_payload", [""])[0]
    if not signature or not payload:
        raise WebhookRejected("missing bt_signature or bt_payload")
    try:
        notification = braintree_gateway().webhook_notification.parse(signature, payload)
    except braintree.exceptions.InvalidSignatureError:
        raise WebhookRejected("bt_signature does not match") from None
    except Exception:
        raise WebhookRejected("bt_payload is not a Braintree notification") from None
    try:
        xml = base64.b64decode(payload.encode("ascii"), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookRejected("bt_payload is not base64 XML") from None
    xml = _CARD_DATA.sub(r"<\1>[redacted]</\1>", xml)
    kind = str(getattr(notification, "kind", "") or "")
    timestamp = getattr(notification, "timestamp", None)
    if not kind or not isinstance(timestamp, datetime):
        raise WebhookRejected("Braintree notification without kind or timestamp")
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    subject_id = _braintree_subject_id(notification)
    # Braintree signs no event id: the same kind, time and subject is the same event.
    event_id = hashlib.sha256(f"{kind}|{timestamp.isoformat()}|{subject_id}".encode()).hexdigest()
    return VerifiedDelivery(
        provider=Gateway.BRAINTREE,
        event_id=event_id,
        event_type=kind[:100],
        object_id=subject_id[:255],
        occurred_at=timestamp,
        payload={"kind": kind, "timestamp": timestamp.isoformat(), "xml": xml},
    )


def _braintree_subject_id(notification: Any) -> str:
    for name in ("transaction", "dispute", "subscription", "disbursement", "merchant_account"):
        subject = getattr(notification, name, None)
        if subject is not None and getattr(subject, "id", None):
            return str(subject.id)
    return ""


# ----------------------------------------------------------------------------------- storage


def _stored_headers(request: HttpRequest) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").title(): str(value)[:1000]
        for key, value in request.META.items()
        if key.startswith("HTTP_") and key not in _DROPPED_HEADERS
    }
    if request.META.get("CONTENT_TYPE"):
        headers["Content-Type"] = request.META["CONTENT_TYPE"][:200]
    return headers


_INSERT_DELIVERY = (
    "INSERT INTO payments_webhookevent (provider, event_id, event_type, object_id, occurred_at,"
    " received_at, payload, raw_body, headers, source_ip, status, attempts, last_error)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'received', 0, '')"
    " ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
)


def webhook_store(*, delivery: VerifiedDelivery, raw_body: str, headers: dict, source_ip: str | None) -> int | None:
    """Insert the delivery once; its id when new, None when (provider, event_id) was stored before.

    The one statement of every delivery: prepared, and run without the health check Django would
    make first. If the kept connection broke since the last request, the insert is made again on
    a new one (it is idempotent); a delivery that was stored by the broken attempt is reported as
    new, so its drain is still requested.
    """
    params = [
        delivery.provider,
        delivery.event_id,
        delivery.event_type,
        delivery.object_id,
        delivery.occurred_at,
        timezone.now(),
        delivery.payload_json or json.dumps(delivery.payload),
        raw_body,
        json.dumps(headers),
        source_ip,
    ]
    try:
        with prepared_cursor(health_check=False) as cursor:
            cursor.execute(_INSERT_DELIVERY, params)
            row = cursor.fetchone()
        return row[0] if row else None
    except (InterfaceError, OperationalError) as exc:
        if connection.in_atomic_block or not session_ended(exc):
            raise
        logger.warning("database connection lost before storing a webhook; storing it on a new connection")
    connection.close()
    with prepared_cursor() as cursor:
        cursor.execute(_INSERT_DELIVERY, params)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                "SELECT id FROM payments_webhookevent WHERE provider = %s AND event_id = %s",
                [delivery.provider, delivery.event_id],
            )
            row = cursor.fetchone()
    return row[0]


def _refuse(request: HttpRequest, provider: str, rejection: WebhookRejected) -> HttpResponse:
    address = client_ip(request) or "unknown"
    security_logger.warning("webhook refused: provider=%s reason=%s ip=%s", provider, rejection.reason, address)
    digest = hmac.new(b"webhook-refusal", f"{provider}|{rejection.reason}|{address}".encode(), "sha256").hexdigest()
    if cache.add(f"webhook-refusal:{digest}", 1, timeout=REFUSAL_AUDIT_INTERVAL_SECONDS):
        audit_record(
            actor=SystemActor("webhook-endpoint"),
            action="webhook.refused",
            details={
                "provider": provider,
                "reason": rejection.reason,
                "status": rejection.status,
                "note": f"further refusals like this one are only logged for {REFUSAL_AUDIT_INTERVAL_SECONDS} s",
            },
            request=request,
        )
    return JsonResponse({"error": rejection.reason}, status=rejection.status)


def _receive(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        body = _read_body(request)
        if provider == Gateway.STRIPE:
            delivery = verify_stripe(body, request.META.get("HTTP_STRIPE_SIGNATURE", ""))
        else:
            delivery = verify_braintree(body)
        # Braintree's form body carries the XML base64-encoded: keep the decoded, redacted XML.
        raw = delivery.payload["xml"] if provider == Gateway.BRAINTREE else body.decode("utf-8")
        if "\x00" in raw or ("\\u0000" in raw and "\\u0000" in json.dumps(delivery.payload)):
            # A NUL, raw or as a JSON escape, cannot be stored (PostgreSQL text and jsonb refuse it).
            raise WebhookRejected("body contains NUL characters")
    except WebhookRejected as rejection:
        return _refuse(request, provider, rejection)
    stored_id = webhook_store(
        delivery=delivery, raw_body=raw, headers=_stored_headers(request), source_ip=client_ip(request)
    )
    if stored_id is None:
        return JsonResponse({"received": True, "duplicate": True})
    webhook_drain_request()
    return JsonResponse({"received": True})


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    return _receive(request, Gateway.STRIPE)


@csrf_exempt
@require_POST
def braintree_webhook(request: HttpRequest) -> HttpResponse:
    return _receive(request, Gateway.BRAINTREE)
