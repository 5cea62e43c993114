"""The merchant REST API: keys, payments through the real Stripe and Braintree SDKs, refunds,
idempotency, tampering, throttling and the OpenAPI pages.

The SDKs talk HTTP to ``FakeGateways`` below, a threaded stdlib server that answers the few Stripe
and Braintree endpoints the API calls with objects built by ``sandbox`` (Stripe's own example
objects, Braintree's XML), so the adapters and the SDKs' parsing run for real; the database and
Redis are real too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction
from django.test import Client
from django.utils.html import escapejs

from fintech.core.models import AuditEvent, Customer
from payments.api_models import ApiKey, IdempotencyRecord, MerchantCustomer
from payments.checkout import api_key_create, api_key_revoke, idempotency_records_purge, merchant_api_grant
from payments.models import JournalEntry, Payment, PaymentStatus, Refund
from payments.services import PaymentFacts, payment_apply_facts
from sandbox.braintree_notifications import transaction_xml
from sandbox.stripe_events import stripe_id, stripe_object
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# --------------------------------------------------------------------------- fake gateways

STRIPE_DECLINES = {
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
}


class FakeGateways:
    """Answers POST /v1/payment_intents, /v1/refunds (Stripe) and Braintree's sale and refund."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.stripe_refund_status = "succeeded"
        self.stripe_refund_error: tuple[int, dict[str, Any]] | None = None
        self.braintree_refund_status = "submitted_for_settlement"
        # What transaction.find answers before a Braintree refund (settled: refunded, not voided).
        self.braintree_find_status = "settled"
        # Called with the intent before Stripe's answer is sent (e.g. to apply a webhook first).
        self.on_intent: Callable[[dict[str, Any]], None] | None = None
        self._idempotent: dict[str, tuple[int, str, str]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length).decode()
                    status, content_type, payload = fake.answer(self.path, dict(self.headers), body)
                    encoded = payload.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(encoded)))
                    self.end_headers()
                    self.wfile.write(encoded)
                finally:
                    connections.close_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["kind"] == kind]

    # ------------------------------------------------------------------ dispatch

    def answer(self, path: str, headers: dict[str, str], body: str) -> tuple[int, str, str]:
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/v1/"):
            if headers.get("Authorization") != f"Bearer {django_settings.STRIPE_API_KEY}":
                return 401, "application/json", json.dumps({"error": {"type": "invalid_request_error"}})
            key = headers.get("Idempotency-Key", "")
            with self._lock:
                if key and key in self._idempotent:
                    return self._idempotent[key]
            form = dict(parse_qsl(body))
            if path == "/v1/payment_intents":
                result = self.stripe_intent(form)
            elif path == "/v1/refunds":
                result = self.stripe_refund(form)
            else:
                result = 404, "application/json", json.dumps({"error": {"type": "invalid_request_error"}})
            if key:
                with self._lock:
                    self._idempotent[key] = result
            return result
        expected = (
            "Basic "
            + base64.b64encode(
                f"{django_settings.BRAINTREE_PUBLIC_KEY}:{django_settings.BRAINTREE_PRIVATE_KEY}".encode()
            ).decode()
        )
        if headers.get("Authorization") != expected:
            return 401, "application/xml", ""
        found = re.fullmatch(r"/merchants/[^/]+/transactions/([^/]+)", path)
        if found:
            self.requests.append({"kind": "braintree_find", "transaction": found.group(1)})
            answer = transaction_xml(transaction_id=found.group(1), amount="1.00", status=self.braintree_find_status)
            return 200, "application/xml", answer
        sale = re.fullmatch(r"/merchants/[^/]+/transactions", path)
        refund = re.fullmatch(r"/merchants/[^/]+/transactions/([^/]+)/refund", path)
        # The SDK sends underscored element names (<payment_method_nonce>); Braintree accepts both.
        document = ElementTree.fromstring(body)  # noqa: S314 - the SDK's own request, in a test
        fields = {element.tag.replace("-", "_"): (element.text or "") for element in document.iter()}
        if sale:
            return self.braintree_sale(fields)
        if refund:
            return self.braintree_refund(refund.group(1), fields)
        return 404, "application/xml", ""

    # ------------------------------------------------------------------ Stripe

    def stripe_intent(self, form: dict[str, str]) -> tuple[int, str, str]:
        method = form.get("payment_method", "")
        metadata = {key[len("metadata[") : -1]: value for key, value in form.items() if key.startswith("metadata[")}
        self.requests.append({"kind": "stripe_intent", "form": form, "metadata": metadata})
        amount = int(form["amount"])
        manual = form.get("capture_method") == "manual"
        intent = stripe_object(
            "payment_intent",
            id=stripe_id("pi"),
            amount=amount,
            amount_received=0,
            currency=form["currency"],
            capture_method=form.get("capture_method", "automatic"),
            created=int(time.time()),
            description=form.get("description"),
            metadata=metadata,
            payment_method=method,
            last_payment_error=None,
            next_action=None,
            latest_charge=None,
            canceled_at=None,
        )
        if method in STRIPE_DECLINES:
            code, message = STRIPE_DECLINES[method]
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": code,
                "message": message,
                "charge": stripe_id("ch"),
            }
            intent.update(status="requires_payment_method", last_payment_error=error, latest_charge=error["charge"])
            return 402, "application/json", json.dumps({"error": {**error, "payment_intent": intent}})
        if method == "pm_card_authenticationRequired":
            intent.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
        elif method == "pm_card_visa":
            charge = stripe_id("ch")
            intent.update(
                status="requires_capture" if manual else "succeeded",
                amount_received=0 if manual else amount,
                amount_capturable=amount if manual else 0,
                latest_charge=charge,
            )
        else:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "payment_method",
                "message": f"No such PaymentMethod: '{method}'",
            }
            return 400, "application/json", json.dumps({"error": error})
        if self.on_intent is not None:
            self.on_intent(intent)
        return 200, "application/json", json.dumps(intent)

    def stripe_refund(self, form: dict[str, str]) -> tuple[int, str, str]:
        metadata = {key[len("metadata[") : -1]: value for key, value in form.items() if key.startswith("metadata[")}
        self.requests.append({"kind": "stripe_refund", "form": form, "metadata": metadata})
        if self.stripe_refund_error is not None:
            status, error = self.stripe_refund_error
            return status, "application/json", json.dumps({"error": error})
        refund = stripe_object(
            "refund",
            id=stripe_id("re"),
            amount=int(form["amount"]),
            currency="usd",
            payment_intent=form["payment_intent"],
            charge=stripe_id("ch"),
            metadata=metadata,
            status=self.stripe_refund_status,
            created=int(time.time()),
        )
        return 200, "application/json", json.dumps(refund)

    # ------------------------------------------------------------------ Braintree

    def braintree_sale(self, fields: dict[str, str]) -> tuple[int, str, str]:
        self.requests.append({"kind": "braintree_sale", "fields": fields})
        amount = Decimal(fields["amount"])
        nonce = fields.get("payment_method_nonce", "")
        transaction_id = uuid.uuid4().hex[:8]
        now = datetime.now(UTC).replace(microsecond=0)
        declined_code = ""
        if nonce == "fake-processor-declined-visa-nonce":
            declined_code, text = "2000", "Do Not Honor"
        elif Decimal(2000) <= amount < Decimal(3000):
            # Braintree's sandbox declines these amounts with the amount as processor code.
            declined_code, text = str(int(amount)), "Insufficient Funds" if int(amount) == 2001 else "Declined"
        elif nonce != "fake-valid-nonce":
            message = "Unknown or expired payment_method_nonce."
            body = (
                '<api-error-response><errors><errors type="array"/></errors>'
                f"<message>{message}</message></api-error-response>"
            )
            return 422, "application/xml", body
        if declined_code:
            transaction = transaction_xml(
                transaction_id=transaction_id,
                amount=amount,
                status="processor_declined",
                processor_response_code=declined_code,
                processor_response_text=text,
                order_id=fields.get("order_id"),
                created_at=now,
            )
            body = (
                f'<api-error-response><errors><errors type="array"/></errors><message>{text}</message>'
                f"{transaction}</api-error-response>"
            )
            return 422, "application/xml", body
        transaction = transaction_xml(
            transaction_id=transaction_id,
            amount=amount,
            status="submitted_for_settlement",
            order_id=fields.get("order_id"),
            created_at=now,
        )
        return 201, "application/xml", transaction

    def braintree_refund(self, sale_id: str, fields: dict[str, str]) -> tuple[int, str, str]:
        self.requests.append({"kind": "braintree_refund", "sale": sale_id, "fields": fields})
        transaction = transaction_xml(
            transaction_id=uuid.uuid4().hex[:8],
            amount=Decimal(fields["amount"]),
            status=self.braintree_refund_status,
            transaction_type="credit",
            refunded_transaction_id=sale_id,
            order_id=fields.get("order_id"),
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        return 201, "application/xml", transaction


@pytest.fixture
def gateways(settings) -> Iterator[FakeGateways]:
    fake = FakeGateways()
    settings.STRIPE_API_BASE = fake.url
    settings.BRAINTREE_ENVIRONMENT = fake.url
    settings.BRAINTREE_CURRENCY = "USD"
    yield fake
    fake.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- helpers


class Merchant:
    def __init__(self, username: str) -> None:
        self.user = UserFactory(username=username)
        merchant_api_grant(user=self.user, actor=self.user)
        self.api_key, self.key = api_key_create(user=self.user, name=f"{username} backend", actor=self.user)
        self.client = Client()

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.key}"}
        if idempotency_key is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
        return headers

    def get(self, path: str, **params: Any):
        return self.client.get(path, params, **self.headers())

    def post(self, path: str, body: Any, *, key: str | None = "auto", raw: bytes | None = None, **extra: Any):
        idempotency_key = uuid.uuid4().hex if key == "auto" else key
        data = raw if raw is not None else json.dumps(body)
        content_type = extra.pop("content_type", "application/json")
        return self.client.post(path, data, content_type=content_type, **self.headers(idempotency_key), **extra)

    def pay(self, **overrides: Any):
        body = {"gateway": "stripe", "amount_minor": 1000, "currency": "USD", "payment_method": "pm_card_visa"}
        body.update(overrides)
        return self.post("/api/payments", {k: v for k, v in body.items() if v is not None})

    def link(self, **values: Any) -> Customer:
        customer = Customer.objects.create(kind="person", legal_name=values.pop("legal_name", "Ada Lovelace"), **values)
        MerchantCustomer.objects.create(merchant=self.user, customer=customer)
        return customer


@pytest.fixture
def merchant(db) -> Merchant:
    return Merchant("shop")


@pytest.fixture
def other_merchant(db) -> Merchant:
    return Merchant("rival")


def error_of(response) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content
    return response.json()["error"]


def actions(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --------------------------------------------------------------------------- authentication


def test_missing_header_is_401_with_a_bearer_challenge(merchant):
    response = Client().get("/api/payments")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert error_of(response)["code"] == "not_authenticated"
    assert "Authorization: Bearer" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic dXNlcjpwYXNz", "invalid_authorization_header"),
        ("Bearer", "invalid_authorization_header"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer fk_test_aaaaaaaaaaaa_" + "A" * 43, "invalid_api_key"),
    ],
)
def test_malformed_and_unknown_keys_are_401(merchant, header, code):
    response = Client().get("/api/payments", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_of(response)["code"] == code


def test_a_key_with_a_wrong_secret_is_401(merchant):
    forged = merchant.api_key.prefix + "_" + "B" * 43
    response = Client().get("/api/payments", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"


def test_a_revoked_key_is_401_and_the_revocation_is_audited(merchant):
    assert merchant.get("/api/payments").status_code == 200
    api_key_revoke(api_key=merchant.api_key, actor=merchant.user)
    response = merchant.get("/api/payments")
    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_revoked"
    assert merchant.api_key.prefix in error_of(response)["message"]
    revoked = actions("api_key.revoked")
    assert len(revoked) == 1 and revoked[0].details["prefix"] == merchant.api_key.prefix


def test_a_disabled_user_is_401_and_a_user_without_the_permission_403(merchant):
    _, key = api_key_create(user=UserFactory(username="nobody"), name="no permission", actor=None)
    response = Client().get("/api/payments", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 403 and error_of(response)["code"] == "not_a_merchant"
    merchant.user.is_active = False
    merchant.user.save()
    response = merchant.get("/api/payments")
    assert response.status_code == 401 and error_of(response)["code"] == "user_inactive"


def test_only_the_hash_of_the_key_is_stored_and_last_use_is_recorded(merchant):
    stored = ApiKey.objects.get(pk=merchant.api_key.pk)
    assert merchant.key.startswith(stored.prefix + "_")
    assert stored.secret_hash == hashlib.sha256(merchant.key.encode()).hexdigest()
    assert merchant.key not in json.dumps(list(ApiKey.objects.values()), default=str)
    assert stored.last_used_at is None
    merchant.get("/api/payments")
    assert ApiKey.objects.get(pk=stored.pk).last_used_at is not None


def test_create_api_key_command_prints_the_key_once_and_audits(db):
    UserFactory(username="acme")
    with pytest.raises(CommandError, match="use_merchant_api"):
        call_command("create_api_key", "--user", "acme", "--name", "backend")
    out = StringIO()
    call_command("create_api_key", "--user", "acme", "--name", "backend", "--grant", stdout=out)
    key = next(line for line in out.getvalue().splitlines() if line.startswith("fk_test_"))
    api_key = ApiKey.objects.get()
    assert key.startswith(api_key.prefix) and api_key.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    assert Client().get("/api/payments", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    created = actions("api_key.created")
    assert len(created) == 1 and created[0].details["prefix"] == api_key.prefix and key not in str(created[0].details)
    assert len(actions("api.merchant_permission_granted")) == 1

    call_command("create_api_key", "--revoke", api_key.prefix, stdout=StringIO())
    assert Client().get("/api/payments", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    assert len(actions("api_key.revoked")) == 1
    with pytest.raises(CommandError, match="already revoked"):
        call_command("create_api_key", "--revoke", api_key.prefix)
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "--user", "ghost", "--name", "x")


# --------------------------------------------------------------------------- creating payments


def test_stripe_payment_succeeds_with_our_references_in_the_gateway_metadata(merchant, gateways):
    customer = merchant.link()
    response = merchant.pay(amount_minor=1999, currency="usd", customer=customer.pk, description="Order 42")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded" and body["gateway"] == "stripe"
    assert (body["amount_minor"], body["currency"], body["amount_captured_minor"]) == (1999, "USD", 1999)
    assert body["customer"] == customer.pk and body["refunds"] == [] and body["amount_refundable_minor"] == 1999
    assert body["failure_code"] == "" and body["id"].startswith("pay_")
    sent = gateways.of_kind("stripe_intent")[0]
    assert sent["metadata"] == {"payment_reference": body["id"], "customer_reference": str(customer.pk)}
    assert sent["form"]["confirm"] == "true" and sent["form"]["amount"] == "1999"
    payment = Payment.objects.get(public_id=body["id"])
    assert payment.merchant == merchant.user and payment.gateway_payment_id.startswith("pi_")
    assert payment.description == "Order 42"
    assert JournalEntry.objects.filter(payment=payment).exists()  # captured funds posted to the ledger
    assert actions("payment.requested")[0].details["payment_id"] == body["id"]


def test_stripe_decline_is_201_failed_with_the_decline_code(merchant, gateways):
    response = merchant.pay(payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure_code"] == "insufficient_funds"
    assert body["failure_message"] == "Your card has insufficient funds."
    assert body["amount_captured_minor"] == 0 and body["amount_refundable_minor"] == 0
    assert Payment.objects.get(public_id=body["id"]).status == PaymentStatus.FAILED


def test_stripe_requires_action_and_manual_capture(merchant, gateways):
    action = merchant.pay(payment_method="pm_card_authenticationRequired").json()
    assert action["status"] == "requires_action"
    manual = merchant.pay(capture=False).json()
    assert manual["status"] == "requires_capture" and manual["amount_captured_minor"] == 0
    assert gateways.of_kind("stripe_intent")[1]["form"]["capture_method"] == "manual"


def test_a_payment_method_the_gateway_refuses_fails_the_payment(merchant, gateways):
    response = merchant.pay(payment_method="pm_does_not_exist")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed" and body["failure_code"] == "resource_missing"
    assert "No such PaymentMethod" in body["failure_message"]


def test_braintree_sale_succeeds_with_our_payment_id_as_order_id(merchant, gateways):
    response = merchant.pay(
        gateway="braintree", payment_method=None, payment_method_nonce="fake-valid-nonce", amount_minor=1050
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded" and body["amount_captured_minor"] == 1050
    assert body["card_brand"] == "Visa" and body["card_last4"] == "1111"
    sent = gateways.of_kind("braintree_sale")[0]["fields"]
    assert sent["order_id"] == body["id"] and sent["amount"] == "10.50"
    assert sent["submit_for_settlement"] == "true"


@pytest.mark.parametrize(
    ("amount_minor", "nonce", "code"),
    [(200100, "fake-valid-nonce", "2001"), (1000, "fake-processor-declined-visa-nonce", "2000")],
)
def test_braintree_decline_is_201_failed_with_the_processor_code(merchant, gateways, amount_minor, nonce, code):
    response = merchant.pay(
        gateway="braintree", payment_method=None, payment_method_nonce=nonce, amount_minor=amount_minor
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["failure_code"]) == ("failed", code)


def test_braintree_in_another_currency_than_the_merchant_account_is_refused(merchant, gateways):
    response = merchant.pay(
        gateway="braintree", payment_method=None, payment_method_nonce="fake-valid-nonce", currency="EUR"
    )
    assert response.status_code == 400 and error_of(response)["field"] == "currency"
    assert not Payment.objects.exists() and not gateways.requests


@pytest.mark.parametrize("gateway", ["stripe", "braintree"])
def test_an_unreachable_gateway_is_503_and_the_payment_stays_pending(merchant, settings, gateway):
    settings.STRIPE_API_BASE = settings.BRAINTREE_ENVIRONMENT = closed_port_url()
    method = (
        {"payment_method": "pm_card_visa"}
        if gateway == "stripe"
        else {
            "payment_method": None,
            "payment_method_nonce": "fake-valid-nonce",
        }
    )
    response = merchant.pay(gateway=gateway, **method)
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "gateway_unavailable" and error["payment_id"].startswith("pay_")
    payment = Payment.objects.get(public_id=error["payment_id"])
    assert payment.status == PaymentStatus.PENDING and payment.merchant == merchant.user


def test_webhooks_after_an_unanswered_request_adopt_the_pending_payment(merchant, settings):
    from payments.inbox import webhook_process
    from payments.models import WebhookEvent

    from .deliveries import deliver_stripe, intent, stripe_event

    settings.STRIPE_API_BASE = closed_port_url()
    response = merchant.pay(payment_method="pm_card_visa", amount_minor=1500)
    assert response.status_code == 503
    public_id = error_of(response)["payment_id"]
    # The gateway did create the PaymentIntent; its webhook carries our reference.
    metadata = {"payment_reference": public_id}
    event = stripe_event("payment_intent.succeeded", intent("pi_adopted", "succeeded", amount=1500, metadata=metadata))
    assert deliver_stripe(Client(), event).status_code == 200
    webhook_process(event_id=WebhookEvent.objects.get().pk)
    payment = Payment.objects.get()
    assert payment.public_id == public_id and payment.merchant == merchant.user
    assert payment.gateway_payment_id == "pi_adopted" and payment.status == PaymentStatus.SUCCEEDED
    assert merchant.get(f"/api/payments/{public_id}").json()["status"] == "succeeded"


def test_an_unconfigured_gateway_is_503_before_anything_is_written(merchant, settings):
    settings.STRIPE_API_KEY = ""
    response = merchant.pay()
    assert response.status_code == 503 and error_of(response)["code"] == "gateway_unavailable"
    assert not Payment.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("carries_reference", [True, False], ids=["adopts-by-reference", "merges-by-gateway-id"])
def test_a_webhook_applied_before_the_answer_ends_on_our_payment(gateways, carries_reference):
    merchant = Merchant("fast-webhook")

    def webhook_first(intent: dict[str, Any]) -> None:
        with transaction.atomic():
            payment_apply_facts(
                facts=PaymentFacts(
                    gateway="stripe",
                    gateway_payment_id=intent["id"],
                    currency="USD",
                    occurred_at=datetime.now(UTC),
                    amount_minor=intent["amount"],
                    status=PaymentStatus.SUCCEEDED,
                    amount_captured_minor=intent["amount"],
                    metadata=intent["metadata"] if carries_reference else {},
                )
            )

    gateways.on_intent = webhook_first
    response = merchant.pay(amount_minor=700)
    assert response.status_code == 201, response.content
    body = response.json()
    payment = Payment.objects.get()
    assert payment.public_id == body["id"] and payment.merchant == merchant.user
    assert payment.gateway_payment_id.startswith("pi_") and payment.status == PaymentStatus.SUCCEEDED
    assert body["status"] == "succeeded" and body["amount_captured_minor"] == 700
    # With our reference the webhook takes our row at once; without, our row merges into its row.
    assert len(actions("payment.merged_with_webhook_row")) == (0 if carries_reference else 1)


def test_webhooks_after_the_answer_converge_on_the_same_payment(merchant, gateways):
    from payments.inbox import webhook_process
    from payments.models import WebhookEvent

    from .deliveries import deliver_stripe, intent, refund, stripe_event

    body = merchant.pay(payment_method="pm_card_authenticationRequired", amount_minor=2000).json()
    assert body["status"] == "requires_action"
    payment = Payment.objects.get(public_id=body["id"])
    pi = payment.gateway_payment_id
    metadata = {"payment_reference": body["id"]}
    later = int(time.time()) + 5
    for event in (
        stripe_event(
            "payment_intent.requires_action", intent(pi, "requires_action", metadata=metadata), created=later - 3
        ),
        stripe_event("payment_intent.succeeded", intent(pi, "succeeded", metadata=metadata), created=later),
    ):
        assert deliver_stripe(Client(), event).status_code == 200
    for event_id in WebhookEvent.objects.order_by("pk").values_list("pk", flat=True):
        webhook_process(event_id=event_id)
    assert Payment.objects.count() == 1
    after = merchant.get(f"/api/payments/{body['id']}").json()
    assert after["status"] == "succeeded" and after["amount_captured_minor"] == 2000

    refunded = merchant.post(f"/api/payments/{body['id']}/refunds", {"amount_minor": 500}).json()
    stored = Refund.objects.get(public_id=refunded["id"])
    event = stripe_event(
        "refund.updated", {**refund(pi, stored.gateway_refund_id, 500), "metadata": {}}, created=later + 5
    )
    assert deliver_stripe(Client(), event).status_code == 200
    webhook_process(event_id=WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first())
    assert Refund.objects.count() == 1
    assert merchant.get(f"/api/payments/{body['id']}").json()["amount_refunded_minor"] == 500


def test_other_methods_are_405_json(merchant):
    response = merchant.client.delete("/api/payments", **merchant.headers())
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


# --------------------------------------------------------------------------- validation and tampering


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": -5}, "amount_minor"),
        ({"amount_minor": "1000"}, "amount_minor"),
        ({"amount_minor": 10.5}, "amount_minor"),
        ({"amount_minor": True}, "amount_minor"),
        ({"amount_minor": 100_000_000}, "amount_minor"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"gateway": "paypal"}, "gateway"),
        ({"payment_method": None}, "payment_method"),
        ({"payment_method_nonce": "fake-valid-nonce"}, "payment_method_nonce"),
        ({"capture": "false"}, "capture"),
        ({"customer": "1"}, "customer"),
        ({"description": 5}, "description"),
    ],
)
def test_invalid_payment_input_is_400_and_creates_nothing(merchant, gateways, overrides, field):
    response = merchant.pay(**overrides)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid_request" and error["field"] == field
    assert not Payment.objects.exists() and not gateways.requests


@pytest.mark.parametrize(
    "tamper",
    [
        {"status": "succeeded"},
        {"fee_minor": 0},
        {"amount_captured_minor": 1000},
        {"amount_refunded_minor": 0},
        {"merchant": 1},
        {"gateway_payment_id": "pi_other"},
        {"id": "pay_chosen"},
    ],
)
def test_fields_a_client_may_not_set_are_refused_not_ignored(merchant, gateways, tamper):
    response = merchant.pay(**tamper)
    assert response.status_code == 400
    error = error_of(response)
    field = next(iter(tamper))
    assert error["field"] == field and "Unknown field" in error["fields"][field][0]
    assert not Payment.objects.exists() and not gateways.requests


def test_a_customer_of_another_merchant_is_refused_like_an_unknown_one(merchant, other_merchant, gateways):
    theirs = other_merchant.link(legal_name="Their Customer")
    foreign = merchant.pay(customer=theirs.pk)
    unknown = merchant.pay(customer=theirs.pk + 1000)
    assert foreign.status_code == unknown.status_code == 400
    assert error_of(foreign)["field"] == "customer"
    assert error_of(foreign)["message"].replace(str(theirs.pk), "N") == error_of(unknown)["message"].replace(
        str(theirs.pk + 1000), "N"
    )
    assert not Payment.objects.exists()
    ours = merchant.pay(customer=merchant.link().pk)
    assert ours.status_code == 201


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b'{"amount_minor": ', "application/json", 400, "malformed_request"),
        (b'{"amount_minor": 1, "amount_minor": 1000000}', "application/json", 400, "malformed_request"),
        (b'{"amount_minor": NaN}', "application/json", 400, "malformed_request"),
        (b'{"description": "a\\u0000b"}', "application/json", 400, "malformed_request"),
        (b"\xff\xfe", "application/json", 400, "malformed_request"),
        (b"[1, 2]", "application/json", 400, "invalid_request"),
        (b"gateway=stripe", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_are_json_4xx(merchant, gateways, raw, content_type, status, code):
    response = merchant.post("/api/payments", None, raw=raw, content_type=content_type)
    assert response.status_code == status, response.content
    assert error_of(response)["code"] == code
    assert not Payment.objects.exists()


def test_an_oversized_body_is_413(merchant, gateways, settings):
    settings.API_MAX_BODY_BYTES = 1024
    response = merchant.pay(description="x" * 2000)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
    assert not Payment.objects.exists()


# --------------------------------------------------------------------------- reading payments


def test_a_merchant_sees_only_its_own_payments(merchant, other_merchant, gateways):
    mine = merchant.pay().json()["id"]
    theirs = other_merchant.pay().json()["id"]
    assert merchant.get(f"/api/payments/{mine}").json()["id"] == mine
    hidden = merchant.get(f"/api/payments/{theirs}")
    missing = merchant.get("/api/payments/pay_doesnotexist")
    assert hidden.status_code == missing.status_code == 404
    assert error_of(hidden)["code"] == "not_found"
    assert [payment["id"] for payment in merchant.get("/api/payments").json()["results"]] == [mine]
    refund = merchant.post(f"/api/payments/{theirs}/refunds", {})
    assert refund.status_code == 404 and not Refund.objects.exists()


def test_list_is_newest_first_with_cursor_pages_and_filters(merchant, gateways):
    ids = [merchant.pay(amount_minor=100 + n, currency="EUR" if n % 2 else "USD").json()["id"] for n in range(5)]
    declined = merchant.pay(payment_method="pm_card_chargeDeclined").json()["id"]
    page = merchant.get("/api/payments", limit=4).json()
    assert [p["id"] for p in page["results"]] == [declined, *reversed(ids)][:4]
    rest = merchant.client.get(page["next"], **merchant.headers()).json()
    assert [p["id"] for p in rest["results"]] == [ids[1], ids[0]] and rest["next"] is None
    assert [p["id"] for p in merchant.get("/api/payments", status="failed").json()["results"]] == [declined]
    assert {p["currency"] for p in merchant.get("/api/payments", currency="eur").json()["results"]} == {"EUR"}
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert merchant.get("/api/payments", created_gte=later).json()["results"] == []
    assert len(merchant.get("/api/payments", created_lt=later).json()["results"]) == 6


@pytest.mark.parametrize(
    "params",
    [{"status": "paid"}, {"currency": "XXX"}, {"created_gte": "yesterday"}, {"limit": 1000}, {"sort": "amount"}],
)
def test_invalid_list_filters_are_400(merchant, params):
    response = merchant.get("/api/payments", **params)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_request"


# --------------------------------------------------------------------------- idempotency


def test_a_post_without_idempotency_key_is_400(merchant, gateways):
    response = merchant.post("/api/payments", {"gateway": "stripe"}, key=None)
    assert response.status_code == 400 and error_of(response)["code"] == "idempotency_key_invalid"
    too_long = merchant.post("/api/payments", {"gateway": "stripe"}, key="k" * 256)
    assert too_long.status_code == 400 and error_of(too_long)["code"] == "idempotency_key_invalid"
    assert not Payment.objects.exists() and not IdempotencyRecord.objects.exists()


def test_a_replay_returns_the_identical_response_and_charges_once(merchant, gateways):
    body = {"gateway": "stripe", "amount_minor": 500, "currency": "USD", "payment_method": "pm_card_visa"}
    first = merchant.post("/api/payments", body, key="order-1")
    again = merchant.post("/api/payments", dict(reversed(list(body.items()))), key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1 and len(gateways.of_kind("stripe_intent")) == 1


def test_the_same_key_with_another_body_is_422(merchant, gateways):
    body = {"gateway": "stripe", "amount_minor": 500, "currency": "USD", "payment_method": "pm_card_visa"}
    assert merchant.post("/api/payments", body, key="order-2").status_code == 201
    response = merchant.post("/api/payments", {**body, "amount_minor": 50000}, key="order-2")
    assert response.status_code == 422 and error_of(response)["code"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1


def test_keys_belong_to_one_merchant(merchant, other_merchant, gateways):
    body = {"gateway": "stripe", "amount_minor": 500, "currency": "USD", "payment_method": "pm_card_visa"}
    mine = merchant.post("/api/payments", body, key="shared")
    theirs = other_merchant.post("/api/payments", body, key="shared")
    assert mine.status_code == theirs.status_code == 201 and mine.json()["id"] != theirs.json()["id"]


def test_a_refused_request_releases_its_key(merchant, gateways):
    body = {"gateway": "stripe", "amount_minor": 0, "currency": "USD", "payment_method": "pm_card_visa"}
    assert merchant.post("/api/payments", body, key="retry-me").status_code == 400
    assert merchant.post("/api/payments", {**body, "amount_minor": 10}, key="retry-me").status_code == 201


def test_a_gateway_outage_answer_is_kept_so_a_retry_never_charges_twice(merchant, settings):
    settings.STRIPE_API_BASE = closed_port_url()
    body = {"gateway": "stripe", "amount_minor": 500, "currency": "USD", "payment_method": "pm_card_visa"}
    first = merchant.post("/api/payments", body, key="outage")
    again = merchant.post("/api/payments", body, key="outage")
    assert first.status_code == again.status_code == 503 and first.content == again.content
    assert Payment.objects.count() == 1


def test_expired_records_are_reused_and_purged(merchant, gateways, settings):
    body = {"gateway": "stripe", "amount_minor": 500, "currency": "USD", "payment_method": "pm_card_visa"}
    first = merchant.post("/api/payments", body, key="old")
    IdempotencyRecord.objects.update(created_at=datetime.now(UTC) - timedelta(hours=25))
    second = merchant.post("/api/payments", body, key="old")
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    merchant.post("/api/payments", body, key="other")
    IdempotencyRecord.objects.filter(key="other").update(created_at=datetime.now(UTC) - timedelta(hours=30))
    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["old"]


def _run_concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_one_payment(gateways):
    merchant = Merchant("busy")
    gateways.delay = 0.3
    body = json.dumps({"gateway": "stripe", "amount_minor": 800, "currency": "USD", "payment_method": "pm_card_visa"})

    def send(_: int):
        response = Client().post("/api/payments", body, content_type="application/json", **merchant.headers("same-key"))
        return response.status_code, response.content

    results = _run_concurrently(6, send)
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
    created = {content for status, content in results if status == 201}
    assert len(created) == 1  # every 201 is the same response
    in_progress = [json.loads(content) for status, content in results if status == 409]
    assert all(item["error"]["code"] == "idempotency_request_in_progress" for item in in_progress)
    assert Payment.objects.count() == 1 and len(gateways.of_kind("stripe_intent")) == 1
    replay = Client().post("/api/payments", body, content_type="application/json", **merchant.headers("same-key"))
    assert replay.status_code == 201 and replay.content in created


# --------------------------------------------------------------------------- refunds


def _succeeded_payment(merchant: Merchant, amount_minor: int = 1000, **overrides: Any) -> str:
    response = merchant.pay(amount_minor=amount_minor, **overrides)
    assert response.json()["status"] == "succeeded", response.content
    return response.json()["id"]


def test_full_refund_by_default(merchant, gateways):
    payment_id = _succeeded_payment(merchant, 1500)
    response = merchant.post(f"/api/payments/{payment_id}/refunds", {"reason": "requested_by_customer"})
    assert response.status_code == 201, response.content
    refund = response.json()
    assert (refund["amount_minor"], refund["status"], refund["payment"]) == (1500, "succeeded", payment_id)
    sent = gateways.of_kind("stripe_refund")[0]
    assert sent["metadata"]["refund_reference"] == refund["id"] and sent["form"]["amount"] == "1500"
    payment = merchant.get(f"/api/payments/{payment_id}").json()
    assert payment["amount_refunded_minor"] == 1500 and payment["amount_refundable_minor"] == 0
    assert [r["id"] for r in payment["refunds"]] == [refund["id"]]
    stored = Refund.objects.get(public_id=refund["id"])
    assert stored.gateway_refund_id.startswith("re_") and stored.requested_by == merchant.user
    assert stored.reason == "requested_by_customer"
    again = merchant.post(f"/api/payments/{payment_id}/refunds", {})
    assert again.status_code == 409 and error_of(again)["code"] == "payment_not_refundable"


def test_partial_refunds_then_over_refund_refused(merchant, gateways):
    payment_id = _succeeded_payment(merchant, 1000)
    first = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 300})
    assert first.status_code == 201 and first.json()["amount_minor"] == 300
    over = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 701})
    assert over.status_code == 422
    error = error_of(over)
    assert error["code"] == "amount_exceeds_refundable" and "700" in error["message"]
    rest = merchant.post(f"/api/payments/{payment_id}/refunds", {})
    assert rest.status_code == 201 and rest.json()["amount_minor"] == 700
    assert Refund.objects.count() == 2
    assert Payment.objects.get(public_id=payment_id).amount_refunded_minor == 1000


@pytest.mark.parametrize("body", [{"amount_minor": 0}, {"amount_minor": "5"}, {"status": "succeeded"}])
def test_invalid_refund_input_is_400(merchant, gateways, body):
    payment_id = _succeeded_payment(merchant)
    response = merchant.post(f"/api/payments/{payment_id}/refunds", body)
    assert response.status_code == 400 and not Refund.objects.exists()


def test_a_failed_payment_cannot_be_refunded(merchant, gateways):
    payment_id = merchant.pay(payment_method="pm_card_chargeDeclined").json()["id"]
    response = merchant.post(f"/api/payments/{payment_id}/refunds", {})
    assert response.status_code == 409 and "failed" in error_of(response)["message"]
    assert not Refund.objects.exists() and not gateways.of_kind("stripe_refund")


def test_a_pending_refund_at_the_gateway_counts_against_the_refundable_amount(merchant, gateways):
    gateways.stripe_refund_status = "pending"
    payment_id = _succeeded_payment(merchant, 1000)
    pending = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 600}).json()
    assert pending["status"] == "pending"
    over = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 500})
    assert over.status_code == 422
    assert merchant.get(f"/api/payments/{payment_id}").json()["amount_refundable_minor"] == 400


def test_a_refund_the_gateway_refuses_is_failed_and_frees_the_amount(merchant, gateways):
    payment_id = _succeeded_payment(merchant, 1000)
    gateways.stripe_refund_error = (
        400,
        {"type": "invalid_request_error", "code": "charge_disputed", "message": "The charge is disputed."},
    )
    refused = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 1000})
    assert refused.status_code == 201
    assert refused.json()["status"] == "failed" and "disputed" in refused.json()["failure_reason"]
    gateways.stripe_refund_error = None
    assert merchant.post(f"/api/payments/{payment_id}/refunds", {}).json()["amount_minor"] == 1000


def test_an_unreachable_gateway_leaves_the_refund_pending(merchant, gateways, settings):
    payment_id = _succeeded_payment(merchant, 1000)
    settings.STRIPE_API_BASE = closed_port_url()
    response = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 400})
    assert response.status_code == 503
    refund = Refund.objects.get(public_id=error_of(response)["refund_id"])
    assert refund.status == "pending" and refund.amount_minor == 400


def test_braintree_refund_carries_our_refund_id_and_stays_pending_until_settled(merchant, gateways):
    payment_id = _succeeded_payment(
        merchant, 2500 - 1, gateway="braintree", payment_method=None, payment_method_nonce="fake-valid-nonce"
    )
    response = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 1000})
    assert response.status_code == 201, response.content
    refund = response.json()
    assert refund["status"] == "pending" and refund["amount_minor"] == 1000
    sent = gateways.of_kind("braintree_refund")[0]
    assert sent["fields"]["order_id"] == refund["id"] and sent["fields"]["amount"] == "10.00"
    stored = Refund.objects.get(public_id=refund["id"])
    assert stored.gateway_refund_id and stored.payment.gateway_payment_id == sent["sale"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_beyond_the_capture_exactly_one_succeeds(gateways):
    merchant = Merchant("racer")
    payment_id = _succeeded_payment(merchant, 1000)
    gateways.delay = 0.2

    def refund(index: int):
        response = Client().post(
            f"/api/payments/{payment_id}/refunds",
            json.dumps({"amount_minor": 600}),
            content_type="application/json",
            **merchant.headers(f"refund-{index}"),
        )
        return response.status_code, response.json()

    results = _run_concurrently(2, refund)
    assert sorted(status for status, _ in results) == [201, 422], results
    assert Refund.objects.count() == 1
    payment = Payment.objects.get(public_id=payment_id)
    assert payment.amount_refunded_minor == 600 and len(gateways.of_kind("stripe_refund")) == 1


# --------------------------------------------------------------------------- customers


def test_a_merchant_creates_a_customer_and_charges_it(merchant, other_merchant, gateways):
    response = merchant.post("/api/customers", {"kind": "person", "legal_name": "Grace Hopper", "email": "g@h.test"})
    assert response.status_code == 201, response.content
    customer_id = response.json()["id"]
    assert MerchantCustomer.objects.filter(merchant=merchant.user, customer_id=customer_id).exists()
    assert merchant.pay(customer=customer_id).status_code == 201
    assert other_merchant.pay(customer=customer_id).status_code == 400
    invalid = merchant.post("/api/customers", {"kind": "robot", "legal_name": "R2"})
    assert invalid.status_code == 400


def test_a_frozen_customer_cannot_be_charged(merchant, gateways):
    customer_id = merchant.post("/api/customers", {"kind": "person", "legal_name": "Frozen Person"}).json()["id"]
    Customer.objects.filter(pk=customer_id).update(status=Customer.Status.FROZEN)
    response = merchant.pay(customer=customer_id)
    assert response.status_code == 403 and error_of(response)["code"] == "customer_frozen"
    assert not Payment.objects.exists() and not gateways.requests


def test_a_frozen_customers_payment_cannot_be_refunded(merchant, gateways):
    customer_id = merchant.post("/api/customers", {"kind": "person", "legal_name": "Later Frozen"}).json()["id"]
    payment_id = merchant.pay(customer=customer_id).json()["id"]
    Customer.objects.filter(pk=customer_id).update(status=Customer.Status.FROZEN)
    response = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 100})
    assert response.status_code == 403 and error_of(response)["code"] == "customer_frozen"
    assert not Refund.objects.exists()


# --------------------------------------------------------------------------- throttling


def test_throttled_requests_are_429_and_audited_once_per_window(merchant, other_merchant, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/minute"}}
    statuses = [merchant.get("/api/payments").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
    throttled = merchant.get("/api/payments")
    assert error_of(throttled)["code"] == "throttled" and int(throttled["Retry-After"]) > 0
    assert other_merchant.get("/api/payments").status_code == 200  # per key, not global
    events = actions("api.throttled")
    assert len(events) == 1 and events[0].details["prefix"] == merchant.api_key.prefix
    assert events[0].actor_id == str(merchant.user.pk)


# --------------------------------------------------------------------------- OpenAPI


def test_the_schema_is_valid_openapi_with_auth_idempotency_and_errors(db):
    from drf_spectacular.validation import validate_schema

    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {"/api/payments", "/api/payments/{payment_id}", "/api/payments/{payment_id}/refunds"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        **schema["components"]["securitySchemes"]["ApiKey"],
        "type": "http",
        "scheme": "bearer",
    }
    create = schema["paths"]["/api/payments"]["post"]
    assert {"ApiKey": []} in create["security"]
    header = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True
    assert create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "Error" in schema["components"]["schemas"]
    assert json.loads(Client().get("/api/schema/", {"format": "json"}).content)["paths"] == schema["paths"]
    yaml = Client().get("/api/schema/")
    assert yaml.status_code == 200 and b"openapi:" in yaml.content


def _csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_swagger_ui_is_served_locally_under_the_csp(db):
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "https://" not in html and "http://" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "<script>" not in html  # no inline script: the start-up script is a separate file
    policy = _csp(page)
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy["style-src"]
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
    script = Client().get(script_url)
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content and b"/api/schema/" in script.content
    bundle = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200


def test_redoc_is_served_locally_with_the_csp_nonce(db):
    page = Client().get("/api/redoc/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "https://" not in html and "fonts.googleapis" not in html
    policy = _csp(page)
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    nonce = re.search(r'<script nonce="([^"]+)">', html).group(1)
    assert f"'nonce-{nonce}'" in policy["script-src"] and f"'nonce-{nonce}'" in policy["style-src"]
    assert f'nonce: "{escapejs(nonce)}"' in html
    assert "blob:" in policy["worker-src"]  # Redoc's search worker
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in html


# --------------------------------------------------------------------------- the sandbox stand-in


@pytest.fixture
def stand_in_server(settings) -> Iterator[Any]:
    """The project's stand-in (sandbox/server.py), which models Stripe's and Braintree's test modes
    in full; its webhooks are switched off here (the webhook tests cover them)."""
    from sandbox import delivery
    from sandbox import server as server_module

    credentials = server_module.SandboxCredentials.from_settings(settings)
    config = delivery.SandboxConfig(webhooks_enabled=False, lifecycle_delay_ms=50)
    server = server_module.SandboxServer(server_module.SandboxApp(credentials, config)).start()
    settings.STRIPE_API_BASE = settings.BRAINTREE_ENVIRONMENT = server.url
    settings.BRAINTREE_CURRENCY = "USD"
    yield server
    server.stop()


@pytest.fixture
def stand_in(stand_in_server) -> str:
    return stand_in_server.url


@pytest.mark.parametrize(
    ("method", "status", "code"),
    [
        ("pm_card_visa", "succeeded", ""),
        ("pm_card_chargeDeclinedInsufficientFunds", "failed", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "failed", "lost_card"),
        ("pm_card_threeDSecure2Required", "requires_action", ""),
    ],
)
def test_stripe_payments_against_the_stand_in(merchant, stand_in, method, status, code):
    response = merchant.pay(payment_method=method, amount_minor=2599)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["failure_code"]) == (status, code)
    payment = Payment.objects.get(public_id=body["id"])
    assert payment.gateway_payment_id.startswith("pi_") and payment.metadata["payment_reference"] == body["id"]


def test_a_dunning_retry_confirms_again_with_the_declined_payment_method(merchant, stand_in):
    from payments.gateways import GatewayError, retry_payment

    body = merchant.pay(payment_method="pm_card_chargeDeclinedInsufficientFunds", amount_minor=1200).json()
    payment = Payment.objects.get(public_id=body["id"])
    assert payment.status == PaymentStatus.FAILED
    # Stripe cleared the intent's payment method on the decline; the retry reuses the declined one
    # (so the gateway answers with a decline again, not "missing a payment method").
    with pytest.raises(GatewayError) as declined:
        retry_payment(payment)
    assert declined.value.code == "insufficient_funds"


def test_stripe_refunds_against_the_stand_in(merchant, stand_in):
    payment_id = _succeeded_payment(merchant, 3000)
    partial = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 1000})
    assert partial.status_code == 201 and partial.json()["status"] == "succeeded", partial.content
    rest = merchant.post(f"/api/payments/{payment_id}/refunds", {})
    assert rest.json()["amount_minor"] == 2000
    over = merchant.post(f"/api/payments/{payment_id}/refunds", {"amount_minor": 1})
    assert over.status_code == 409
    payment = merchant.get(f"/api/payments/{payment_id}").json()
    assert payment["amount_refunded_minor"] == 3000 and len(payment["refunds"]) == 2


def test_braintree_payments_and_refunds_against_the_stand_in(merchant, stand_in):
    nonce = {"gateway": "braintree", "payment_method": None, "payment_method_nonce": "fake-valid-nonce"}
    sale = merchant.pay(amount_minor=4200, **nonce)
    assert sale.status_code == 201, sale.content
    body = sale.json()
    assert body["status"] == "succeeded" and body["card_brand"] == "Visa"
    declined = merchant.pay(amount_minor=200100, **nonce).json()
    assert (declined["status"], declined["failure_code"]) == ("failed", "2001")
    # Braintree refunds only settled sales (error 91506 before); the stand-in settles after 50 ms.
    from payments.gateways.braintree import braintree_gateway

    sale_id = Payment.objects.get(public_id=body["id"]).gateway_payment_id
    deadline = time.monotonic() + 20
    while braintree_gateway().transaction.find(sale_id).status != "settled":
        assert time.monotonic() < deadline, "the stand-in never settled the sale"
        time.sleep(0.05)
    refund = merchant.post(f"/api/payments/{body['id']}/refunds", {"amount_minor": 1200})
    assert refund.status_code == 201, refund.content
    assert refund.json()["status"] in {"pending", "succeeded"} and refund.json()["amount_minor"] == 1200
    assert Refund.objects.get(public_id=refund.json()["id"]).gateway_refund_id


# --------------------------------------------------------------------------- Braintree: void before settlement

BRAINTREE_NONCE = {"gateway": "braintree", "payment_method": None, "payment_method_nonce": "fake-valid-nonce"}


@pytest.fixture
def unsettled(stand_in_server, monkeypatch) -> Any:
    """The stand-in with settlement held back (sales stay submitted_for_settlement until a test
    settles them), and a record of the Braintree calls the adapter makes (the real SDK runs)."""
    from payments.gateways import braintree as adapter

    stand_in_server.app.configure({"lifecycle_delay_ms": 600_000})
    calls: list[str] = []
    for name in ("find_transaction", "void_transaction", "create_refund"):
        original = getattr(adapter, name)

        def recorded(*args: Any, _name: str = name, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(adapter, name, recorded)
    stand_in_server.calls = calls
    return stand_in_server


def _braintree_sale(merchant: Merchant, amount_minor: int = 4200) -> Payment:
    response = merchant.pay(amount_minor=amount_minor, **BRAINTREE_NONCE)
    assert response.status_code == 201 and response.json()["status"] == "succeeded", response.content
    return Payment.objects.get(public_id=response.json()["id"])


def _stand_in_status(server: Any, transaction_id: str) -> str:
    return server.app.braintree.transactions[transaction_id].status


def _ledger(payment: Payment) -> dict[str, int]:
    from django.db.models import Sum

    from payments.models import Posting

    rows = (
        Posting.objects.filter(entry__payment=payment)
        .values_list("account__kind")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    return dict(rows)


def test_a_full_refund_before_settlement_voids_the_sale(merchant, unsettled):
    from payments.ledger import ledger_unbalanced_currencies

    payment = _braintree_sale(merchant)
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "submitted_for_settlement"
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"reason": "duplicate"}, key="void-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["method"], body["status"], body["amount_minor"]) == ("void", "succeeded", 4200)
    assert unsettled.calls == ["find_transaction", "void_transaction"]
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "voided"

    refund = Refund.objects.get(public_id=body["id"])
    assert (refund.method, refund.gateway_refund_id, refund.requested_by) == (
        "void",
        payment.gateway_payment_id,
        merchant.user,
    )
    shown = merchant.get(f"/api/payments/{payment.public_id}").json()
    assert (shown["status"], shown["amount_refunded_minor"], shown["amount_refundable_minor"]) == ("canceled", 4200, 0)
    assert [r["method"] for r in shown["refunds"]] == ["void"]

    # The capture is reversed; no refund is posted (no money moved); the ledger balances.
    keys = set(JournalEntry.objects.filter(payment=payment).values_list("idempotency_key", flat=True))
    captured = f"braintree:payment:{payment.gateway_payment_id}:captured"
    assert keys == {captured, f"{captured}:reversed"}
    assert _ledger(payment) == {"gateway_clearing": 0, "customer_funds": 0}
    assert ledger_unbalanced_currencies() == {}
    requested = actions("refund.requested")
    assert len(requested) == 1 and requested[0].details["method"] == "void"
    assert [event.details["refund_id"] for event in actions("payment.voided")] == [refund.public_id]

    # The same request again: the same answer, nothing more done.
    replay = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"reason": "duplicate"}, key="void-1")
    assert replay.status_code == 201 and replay.content == response.content
    assert replay["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1 and unsettled.calls == ["find_transaction", "void_transaction"]
    # A new request: the payment is canceled, nothing is left to refund (the gateway is not asked).
    again = merchant.post(f"/api/payments/{payment.public_id}/refunds", {})
    assert again.status_code == 409 and error_of(again)["code"] == "payment_not_refundable"
    assert Refund.objects.count() == 1 and len(unsettled.calls) == 2


def test_a_partial_refund_before_settlement_is_409_and_writes_nothing(merchant, unsettled):
    payment = _braintree_sale(merchant)
    audit_count = AuditEvent.objects.count()
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"amount_minor": 1000}, key="part-1")
    assert response.status_code == 409, response.content
    error = error_of(response)
    assert error["code"] == "payment_not_settled"
    assert error["message"] == (
        "Braintree refunds a transaction only after it settles; refund the whole amount to void it, "
        "or retry after settlement."
    )
    assert unsettled.calls == ["find_transaction"]
    assert not Refund.objects.exists() and AuditEvent.objects.count() == audit_count
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded_minor) == ("succeeded", 0)
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "submitted_for_settlement"
    assert unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids == []

    # The key was released: once the sale settles, the same request is a refund.
    unsettled.app.braintree.settle_now(payment.gateway_payment_id)
    retried = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"amount_minor": 1000}, key="part-1")
    assert retried.status_code == 201, retried.content
    assert (retried.json()["method"], retried.json()["amount_minor"]) == ("refund", 1000)


def test_a_refund_after_settlement_is_a_refund(merchant, unsettled):
    payment = _braintree_sale(merchant)
    unsettled.app.braintree.settle_now(payment.gateway_payment_id)
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["method"], body["status"], body["amount_minor"]) == ("refund", "pending", 4200)
    assert unsettled.calls == ["find_transaction", "create_refund"]
    refund = Refund.objects.get(public_id=body["id"])
    sale = unsettled.app.braintree.transactions[payment.gateway_payment_id]
    assert sale.status == "settled" and sale.refund_ids == [refund.gateway_refund_id]
    payment.refresh_from_db()
    assert payment.status == "succeeded" and not actions("payment.voided")


def test_a_void_refused_because_the_sale_settled_meanwhile_becomes_a_refund(merchant, unsettled, monkeypatch):
    from payments.gateways import braintree as adapter

    payment = _braintree_sale(merchant)
    find = adapter.find_transaction

    def find_then_settle(transaction_id: str) -> Any:
        found = find(transaction_id)
        unsettled.app.braintree.settle_now(transaction_id)  # settles between our check and our void
        return found

    monkeypatch.setattr(adapter, "find_transaction", find_then_settle)
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["method"], body["status"], body["amount_minor"]) == ("refund", "pending", 4200)
    assert unsettled.calls == ["find_transaction", "void_transaction", "create_refund"]
    refund = Refund.objects.get(public_id=body["id"])
    assert refund.gateway_refund_id in unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids
    assert [(e.details["from"], e.details["to"]) for e in actions("refund.method_changed")] == [("void", "refund")]
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "settled"


def test_a_void_is_not_undone_by_later_notifications(merchant, unsettled, client):
    from payments.inbox import webhook_process
    from payments.ledger import ledger_unbalanced_currencies
    from payments.models import WebhookEvent
    from sandbox.braintree_notifications import braintree_notification_xml

    from .deliveries import braintree_signed_xml, deliver_braintree

    payment = _braintree_sale(merchant, 3100)
    assert merchant.post(f"/api/payments/{payment.public_id}/refunds", {}).json()["method"] == "void"
    later = datetime.now(UTC) + timedelta(minutes=5)
    notifications = [("transaction_settlement_declined", "settlement_declined"), ("transaction_settled", "settled")]
    for kind, status in notifications:
        subject = transaction_xml(
            transaction_id=payment.gateway_payment_id,
            amount="31.00",
            status=status,
            order_id=payment.public_id,
            created_at=payment.created_at,
        )
        xml = braintree_notification_xml(kind, subject, timestamp=later)
        assert deliver_braintree(client, braintree_signed_xml(xml)).status_code == 200
    for event_id in WebhookEvent.objects.order_by("pk").values_list("pk", flat=True):
        webhook_process(event_id=event_id)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded_minor) == ("canceled", 3100)
    assert Refund.objects.get().status == "succeeded"
    assert _ledger(payment) == {"gateway_clearing": 0, "customer_funds": 0}
    assert ledger_unbalanced_currencies() == {}


def _void_with_lost_answer(merchant: Merchant, unsettled: Any, monkeypatch: Any, *, reaches_gateway: bool) -> Refund:
    """A full refund before settlement whose void answer is lost (the void reached Braintree or
    not) and whose follow-up lookup fails too: 503, the refund left pending."""
    from payments.checkout import PENDING_REFUND_GRACE
    from payments.gateways import GatewayError
    from payments.gateways import braintree as adapter

    payment = _braintree_sale(merchant)
    void, find = adapter.void_transaction, adapter.find_transaction
    lookups = iter([True, False])  # the refund's own status check works; the follow-up does not

    def void_lost(transaction_id: str) -> Any:
        if reaches_gateway:
            void(transaction_id)
        raise GatewayError("read timed out", retryable=True)

    def find_once(transaction_id: str) -> Any:
        if next(lookups, True):
            return find(transaction_id)
        raise GatewayError("read timed out", retryable=True)

    monkeypatch.setattr(adapter, "void_transaction", void_lost)
    monkeypatch.setattr(adapter, "find_transaction", find_once)
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"reason": "duplicate"})
    assert response.status_code == 503, response.content
    monkeypatch.setattr(adapter, "void_transaction", void)
    monkeypatch.setattr(adapter, "find_transaction", find)
    refund = Refund.objects.get(payment=payment)
    assert (refund.method, refund.status) == ("void", "pending")
    # Looked at again once it is older than the grace period.
    Refund.objects.filter(pk=refund.pk).update(
        created_at=datetime.now(UTC) - PENDING_REFUND_GRACE - timedelta(seconds=1)
    )
    return refund


def test_a_void_whose_answer_was_lost_is_recorded_by_the_beat_job(merchant, unsettled, monkeypatch):
    from payments.ledger import ledger_unbalanced_currencies
    from payments.tasks import resolve_pending_refunds

    refund = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=True)
    payment = refund.payment
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "voided"

    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.method, refund.status, payment.status) == ("void", "succeeded", "canceled")
    assert [event.details["refund_id"] for event in actions("payment.voided")] == [refund.public_id]
    assert _ledger(payment) == {"gateway_clearing": 0, "customer_funds": 0}
    assert ledger_unbalanced_currencies() == {}
    assert resolve_pending_refunds() == 0  # nothing left pending


def test_a_void_that_never_reached_braintree_is_made_by_the_beat_job(merchant, unsettled, monkeypatch):
    from payments.tasks import resolve_pending_refunds

    refund = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=False)
    payment = refund.payment
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "submitted_for_settlement"

    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.status, payment.status) == ("succeeded", "canceled")
    assert _stand_in_status(unsettled, payment.gateway_payment_id) == "voided"


def test_a_sale_that_settled_before_the_beat_job_is_refunded_instead(merchant, unsettled, monkeypatch):
    from payments.tasks import resolve_pending_refunds

    refund = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=False)
    payment = refund.payment
    unsettled.app.braintree.settle_now(payment.gateway_payment_id)

    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.method == "refund" and refund.gateway_refund_id
    assert refund.gateway_refund_id in unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids
    assert payment.status == "succeeded"
    assert [(e.details["from"], e.details["to"]) for e in actions("refund.method_changed")] == [("void", "refund")]


def test_a_pending_void_stays_pending_while_braintree_is_unreachable(merchant, unsettled, monkeypatch):
    from payments.gateways import GatewayError
    from payments.gateways import braintree as adapter
    from payments.tasks import resolve_pending_refunds

    refund = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=True)

    def unreachable(transaction_id: str) -> Any:
        raise GatewayError("connection refused", retryable=True)

    monkeypatch.setattr(adapter, "find_transaction", unreachable)
    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    assert refund.status == "pending" and not actions("payment.voided")


def _refund_answer_lost(monkeypatch: Any) -> None:
    """Braintree makes the next refunds (credits) but their answers never arrive."""
    from payments.gateways import GatewayError
    from payments.gateways import braintree as adapter

    create = adapter.create_refund

    def create_then_lose(**kwargs: Any) -> Any:
        create(**kwargs)
        raise GatewayError("read timed out", retryable=True)

    monkeypatch.setattr(adapter, "create_refund", create_then_lose)


def _past_grace(refund: Refund) -> None:
    from payments.checkout import PENDING_REFUND_GRACE

    past_grace = datetime.now(UTC) - PENDING_REFUND_GRACE - timedelta(seconds=1)
    Refund.objects.filter(pk=refund.pk).update(created_at=past_grace)


def test_a_refund_made_for_a_settled_void_whose_answer_was_lost_is_found_by_its_reference(
    merchant, unsettled, monkeypatch
):
    from payments.gateways import braintree as adapter
    from payments.tasks import resolve_pending_refunds

    refund = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=False)
    payment = refund.payment
    unsettled.app.braintree.settle_now(payment.gateway_payment_id)
    create = adapter.create_refund
    _refund_answer_lost(monkeypatch)
    assert resolve_pending_refunds() == 1  # refunds instead of voiding; that answer is lost too
    refund.refresh_from_db()
    assert (refund.method, refund.status, refund.gateway_refund_id) == ("refund", "pending", "")
    credits = unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids
    assert len(credits) == 1

    monkeypatch.setattr(adapter, "create_refund", create)
    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    assert refund.gateway_refund_id == credits[0]  # found by its order_id, not made a second time
    assert unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids == credits
    assert resolve_pending_refunds() == 0


def test_a_braintree_refund_whose_answer_was_lost_is_recorded_by_the_beat_job(merchant, unsettled, monkeypatch):
    from payments.tasks import resolve_pending_refunds

    payment = _braintree_sale(merchant)
    unsettled.app.braintree.settle_now(payment.gateway_payment_id)
    _refund_answer_lost(monkeypatch)
    response = merchant.post(f"/api/payments/{payment.public_id}/refunds", {"amount_minor": 1000})
    assert response.status_code == 503, response.content
    refund = Refund.objects.get(payment=payment)
    assert (refund.method, refund.status, refund.gateway_refund_id) == ("refund", "pending", "")
    credits = unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids
    _past_grace(refund)

    assert resolve_pending_refunds() == 1
    refund.refresh_from_db()
    assert refund.gateway_refund_id == credits[0] and refund.amount_minor == 1000
    assert len(unsettled.app.braintree.transactions[payment.gateway_payment_id].refund_ids) == 1


def test_one_refund_that_cannot_be_resolved_does_not_hold_up_the_others(merchant, unsettled, monkeypatch):
    from payments import checkout
    from payments.tasks import resolve_pending_refunds

    first = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=True)
    second = _void_with_lost_answer(merchant, unsettled, monkeypatch, reaches_gateway=True)
    resolve = checkout.checkout_refund_resolve

    def broken_for_the_first(*, refund_id: int) -> Refund:
        if refund_id == first.pk:
            raise RuntimeError("unexpected")
        return resolve(refund_id=refund_id)

    monkeypatch.setattr(checkout, "checkout_refund_resolve", broken_for_the_first)
    assert resolve_pending_refunds() == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("pending", "succeeded")


@pytest.mark.parametrize("void_first", [False, True])
def test_a_void_and_a_capture_converge_in_either_order(db, void_first):
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    captured = PaymentFacts(
        gateway="braintree",
        gateway_payment_id="bt_either",
        currency="USD",
        occurred_at=at,
        amount_minor=500,
        status=PaymentStatus.SUCCEEDED,
        amount_captured_minor=500,
    )
    voided = PaymentFacts(
        gateway="braintree",
        gateway_payment_id="bt_either",
        currency="USD",
        occurred_at=at + timedelta(seconds=5),
        status=PaymentStatus.CANCELED,
    )
    for facts in [voided, captured, voided] if void_first else [captured, voided, captured]:
        with transaction.atomic():
            payment_apply_facts(facts=facts)
    payment = Payment.objects.get(gateway_payment_id="bt_either")
    assert payment.status == "canceled"
    assert all(total == 0 for total in _ledger(payment).values())


@pytest.mark.django_db(transaction=True)
def test_concurrent_full_refunds_before_settlement_void_once(stand_in_server):
    stand_in_server.app.configure({"lifecycle_delay_ms": 600_000})
    merchant = Merchant("voider")
    payment = _braintree_sale(merchant)

    def refund(index: int):
        response = Client().post(
            f"/api/payments/{payment.public_id}/refunds",
            json.dumps({}),
            content_type="application/json",
            **merchant.headers(f"void-{index}"),
        )
        return response.status_code, response.json()

    results = _run_concurrently(2, refund)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409], results
    assert Refund.objects.filter(status="succeeded").count() == 1
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded_minor) == ("canceled", 4200)
