"""Webhook endpoints: verification, storage once, refusals, and every event type applied."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from fintech.core.models import AuditEvent
from payments.inbox import webhook_process
from payments.ledger import ledger_unbalanced_currencies
from payments.models import (
    CustomerNotification,
    Dispute,
    DunningPlan,
    JournalEntry,
    Payment,
    Payout,
    Refund,
    WebhookEvent,
)

from .deliveries import (
    braintree_sample,
    braintree_signed_xml,
    charge,
    deliver_braintree,
    deliver_stripe,
    dispute,
    intent,
    payout,
    refund,
    stripe_event,
    stripe_signature,
)

pytestmark = pytest.mark.django_db


def process_all() -> None:
    for event_id in WebhookEvent.objects.order_by("pk").values_list("pk", flat=True):
        webhook_process(event_id=event_id)


def balance(kind: str, gateway: str = "stripe", currency: str = "USD") -> int:
    from django.db.models import Sum

    from payments.models import Posting

    total = Posting.objects.filter(account__kind=kind, account__gateway=gateway, account__currency=currency).aggregate(
        total=Sum("amount_minor")
    )["total"]
    return total or 0


# ----------------------------------------------------------------------------------- storage


def test_verified_delivery_is_stored_once_and_answers_2xx(client):
    event = stripe_event("payment_intent.succeeded", intent("pi_store1", "succeeded"))
    first = deliver_stripe(client, event, HTTP_COOKIE="sessionid=secret", HTTP_X_TRACE="abc")
    again = deliver_stripe(client, event)
    assert first.status_code == 200 and first.json() == {"received": True}
    assert again.status_code == 200 and again.json()["duplicate"] is True
    stored = WebhookEvent.objects.get()
    assert (stored.provider, stored.event_id, stored.event_type) == ("stripe", event["id"], "payment_intent.succeeded")
    assert stored.object_id == "pi_store1" and stored.status == "received"
    assert json.loads(stored.raw_body) == event
    assert "Cookie" not in stored.headers and stored.headers["X-Trace"] == "abc"
    assert stored.source_ip == "127.0.0.1"


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_store_one_row():
    event = stripe_event("payment_intent.succeeded", intent("pi_race1", "succeeded"))
    body = json.dumps(event)
    signature = stripe_signature(body)
    statuses: list[int] = []

    def post() -> None:
        response = Client().post(
            "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
        statuses.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert WebhookEvent.objects.count() == 1


def test_second_webhook_secret_is_accepted_for_rotation(client, settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new", "whsec_old"]
    event = stripe_event("payment_intent.created", intent("pi_rot1", "requires_payment_method"))
    body = json.dumps(event)
    response = client.post(
        "/webhooks/stripe/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret="whsec_old"),
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


# ---------------------------------------------------------------------------------- refusals


def _stripe_post(client, body: str, signature: str | None, **extra):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post("/webhooks/stripe/", body, content_type="application/json", **headers, **extra)


REFUSALS = [
    ("unsigned", lambda body: None, 400, "missing Stripe-Signature"),
    ("forged", lambda body: stripe_signature(body, secret="whsec_attacker"), 400, "does not match"),
    ("stale", lambda body: stripe_signature(body, timestamp=int(time.time()) - 400), 400, "too old"),
    ("future", lambda body: stripe_signature(body, timestamp=int(time.time()) + 400), 400, "future"),
    ("garbage header", lambda body: "nonsense", 400, "no timestamp"),
]


@pytest.mark.parametrize(("name", "sign", "status", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_stripe_deliveries_store_nothing(client, name, sign, status, reason):
    body = json.dumps(stripe_event("payment_intent.succeeded", intent("pi_bad", "succeeded")))
    response = _stripe_post(client, body, sign(body))
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert WebhookEvent.objects.count() == 0 and Payment.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"id": "evt_1", "type": "x"}), "not a Stripe event"),
        (json.dumps([1, 2]), "not a Stripe event"),
        (json.dumps({"id": "nope", "type": "charge.succeeded", "created": 1, "data": {"object": {}}}), "not a Stripe"),
        (json.dumps({"id": "evt_1", "type": "a", "created": "1", "data": {"object": {}}}), "not a Stripe event"),
    ],
)
def test_malformed_signed_bodies_are_refused(client, body, reason):
    response = _stripe_post(client, body, stripe_signature(body))
    assert response.status_code == 400 and reason in response.json()["error"]
    assert WebhookEvent.objects.count() == 0


def test_a_nul_written_as_a_json_escape_is_refused_not_a_500(client):
    body = json.dumps(stripe_event("charge.succeeded", charge("pi_nul", description="a\x00b")))
    assert "\\u0000" in body
    response = _stripe_post(client, body, stripe_signature(body))
    assert response.status_code == 400 and "NUL" in response.json()["error"]
    assert WebhookEvent.objects.count() == 0


def test_oversized_delivery_is_413_and_not_stored(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
    event = stripe_event("payment_intent.succeeded", intent("pi_big", "succeeded", description="x" * (1024 * 1024)))
    response = deliver_stripe(client, event)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_get_is_not_allowed(client):
    assert client.get("/webhooks/stripe/").status_code == 405
    assert client.get("/webhooks/braintree/").status_code == 405


def test_a_flood_of_refusals_writes_one_audit_event(client):
    body = json.dumps(stripe_event("payment_intent.succeeded", intent("pi_flood", "succeeded")))
    for _ in range(25):
        assert _stripe_post(client, body, stripe_signature(body, secret="whsec_x")).status_code == 400
    refusals = AuditEvent.objects.filter(action="webhook.refused")
    assert refusals.count() == 1
    assert refusals.get().details["reason"] == "Stripe-Signature does not match"


def test_braintree_forged_and_malformed_deliveries_are_refused(client):
    form = braintree_sample("transaction_settled", "bt_forged")
    tampered = {**form, "bt_signature": form["bt_signature"][:-4] + "abcd"}
    assert deliver_braintree(client, tampered).status_code == 400
    assert deliver_braintree(client, {"bt_signature": form["bt_signature"]}).status_code == 400
    assert client.post("/webhooks/braintree/", "%%%", content_type="text/plain").status_code == 400
    assert deliver_braintree(client, {**form, "bt_payload": "<xml>"}).status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_braintree_duplicate_is_stored_once_and_card_data_is_never_stored(client):
    form = braintree_sample("refund_failed", "bt_refund1")
    assert deliver_braintree(client, form).status_code == 200
    assert deliver_braintree(client, form).json()["duplicate"] is True
    stored = WebhookEvent.objects.get()
    assert stored.event_type == "refund_failed" and stored.object_id == "bt_refund1"
    # The SDK's sample refund notification carries a card number and CVV: neither is kept.
    assert "1234560000001234" not in stored.raw_body and "1234560000001234" not in json.dumps(stored.payload)
    assert "<cvv>123</cvv>" not in stored.raw_body


# --------------------------------------------------------------------------- Stripe handlers


def test_payment_intent_lifecycle_and_ledger(client):
    now = int(time.time())
    pi = "pi_life1"
    deliver_stripe(client, stripe_event("payment_intent.created", intent(pi, "requires_payment_method"), created=now))
    deliver_stripe(
        client, stripe_event("payment_intent.requires_action", intent(pi, "requires_action"), created=now + 1)
    )
    deliver_stripe(client, stripe_event("payment_intent.processing", intent(pi, "processing"), created=now + 2))
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent(pi, "succeeded"), created=now + 3))
    deliver_stripe(client, stripe_event("charge.succeeded", charge(pi), created=now + 3))
    process_all()
    payment = Payment.objects.get(gateway_payment_id=pi)
    assert payment.status == "succeeded" and payment.amount_captured_minor == 2000
    assert (payment.gateway_charge_id, payment.card_brand, payment.card_last4) == ("ch_life1", "visa", "4242")
    assert payment.email == "payer@example.com" and payment.fee_minor == 88
    assert balance("gateway_clearing") == 2000 - 88
    assert balance("customer_funds") == -2000 and balance("fees") == 88
    assert JournalEntry.objects.filter(payment=payment).count() == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert payment.webhook_events.count() == 5


def test_succeeded_payment_never_goes_back_to_processing(client):
    now = int(time.time())
    deliver_stripe(client, stripe_event("payment_intent.succeeded", intent("pi_order1", "succeeded"), created=now))
    deliver_stripe(
        client, stripe_event("payment_intent.processing", intent("pi_order1", "processing"), created=now + 5)
    )
    process_all()
    assert Payment.objects.get().status == "succeeded"


def test_payment_failed_records_decline_and_starts_dunning(client):
    error = {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    event = stripe_event(
        "payment_intent.payment_failed",
        intent("pi_fail1", "requires_payment_method", last_payment_error=error, receipt_email="p@example.com"),
    )
    deliver_stripe(client, event)
    process_all()
    payment = Payment.objects.get()
    assert payment.status == "failed"
    assert (payment.failure_code, payment.failure_message) == (
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    plan = DunningPlan.objects.get(payment=payment)
    assert plan.status == "active" and plan.next_attempt_at is not None
    assert set(CustomerNotification.objects.values_list("kind", flat=True)) == {"payment_failed", "retry_scheduled"}
    assert JournalEntry.objects.count() == 0


def test_charge_failed_canceled_and_capture_events(client):
    now = int(time.time())
    failed = charge(
        "pi_cf1",
        status="failed",
        captured=False,
        failure_code="card_declined",
        failure_message="Your card was declined.",
        outcome={"reason": "generic_decline"},
    )
    deliver_stripe(client, stripe_event("charge.failed", failed, created=now))
    deliver_stripe(client, stripe_event("payment_intent.canceled", intent("pi_cancel1", "canceled"), created=now))
    deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_cap1", captured=False), created=now))
    deliver_stripe(
        client,
        stripe_event("payment_intent.amount_capturable_updated", intent("pi_cap1", "requires_capture"), created=now),
    )
    process_all()
    assert Payment.objects.get(gateway_payment_id="pi_cf1").failure_code == "generic_decline"
    assert Payment.objects.get(gateway_payment_id="pi_cancel1").status == "canceled"
    authorised = Payment.objects.get(gateway_payment_id="pi_cap1")
    assert authorised.status == "requires_capture" and balance("gateway_clearing") == 0
    deliver_stripe(
        client, stripe_event("charge.captured", charge("pi_cap1", amount=1500, amount_captured=1500), created=now + 9)
    )
    process_all()
    authorised.refresh_from_db()
    assert authorised.status == "succeeded" and authorised.amount_captured_minor == 1500
    assert balance("customer_funds") == -1500


def test_refunds_partial_full_and_failed_after_success(client):
    now = int(time.time())
    pi = "pi_ref1"
    deliver_stripe(client, stripe_event("charge.succeeded", charge(pi), created=now))
    refunded = charge(pi, amount_refunded=500, refunds={"object": "list", "data": [refund(pi, "re_1", 500)]})
    deliver_stripe(client, stripe_event("charge.refunded", refunded, created=now + 1))
    deliver_stripe(client, stripe_event("charge.refund.updated", refund(pi, "re_2", 300, "pending"), created=now + 2))
    deliver_stripe(client, stripe_event("charge.refund.updated", refund(pi, "re_2", 300, "succeeded"), created=now + 3))
    process_all()
    payment = Payment.objects.get()
    assert payment.amount_refunded_minor == 800 and balance("refunds") == 800
    deliver_stripe(client, stripe_event("charge.refund.updated", refund(pi, "re_2", 300, "failed"), created=now + 4))
    process_all()
    payment.refresh_from_db()
    assert Refund.objects.get(gateway_refund_id="re_2").status == "failed"
    assert payment.amount_refunded_minor == 500 and balance("refunds") == 500
    assert ledger_unbalanced_currencies() == {}


def test_dispute_lifecycle_with_funds_withdrawn_and_reinstated(client):
    now = int(time.time())
    pi = "pi_dsp1"
    deliver_stripe(client, stripe_event("charge.succeeded", charge(pi), created=now))
    deliver_stripe(
        client, stripe_event("charge.dispute.created", dispute(pi, "dp_1", "needs_response"), created=now + 1)
    )
    withdrawn = dispute(
        pi, "dp_1", "needs_response", balance_transactions=[{"id": "txn_d1", "amount": -2000, "fee": 1500}]
    )
    deliver_stripe(client, stripe_event("charge.dispute.funds_withdrawn", withdrawn, created=now + 1))
    deliver_stripe(client, stripe_event("charge.dispute.updated", dispute(pi, "dp_1", "under_review"), created=now + 2))
    process_all()
    record = Dispute.objects.get()
    assert record.status == "under_review" and record.evidence_due_by is not None and record.reason == "fraudulent"
    assert balance("disputes") == 2000 and balance("fees") == 88 + 1500
    reinstated = dispute(pi, "dp_1", "won", balance_transactions=[{"id": "txn_d2", "amount": 2000, "fee": 0}])
    deliver_stripe(client, stripe_event("charge.dispute.funds_reinstated", reinstated, created=now + 3))
    deliver_stripe(client, stripe_event("charge.dispute.closed", dispute(pi, "dp_1", "won"), created=now + 3))
    process_all()
    record.refresh_from_db()
    assert record.status == "won" and record.closed_at is not None
    assert (record.funds_withdrawn_minor, record.funds_reinstated_minor) == (2000, 2000)
    assert balance("disputes") == 0


def test_payouts_paid_and_failed_after_paid(client):
    now = int(time.time())
    deliver_stripe(client, stripe_event("payout.paid", payout("po_1", "paid"), created=now))
    deliver_stripe(
        client,
        stripe_event(
            "payout.paid", payout("po_2", "paid", balance_transaction={"id": "txn_po2", "fee": 25}), created=now
        ),
    )
    process_all()
    assert balance("payouts") == 10000 and Payout.objects.get(gateway_payout_id="po_2").fee_minor == 25
    deliver_stripe(client, stripe_event("payout.failed", payout("po_1", "failed"), created=now + 60))
    process_all()
    failed = Payout.objects.get(gateway_payout_id="po_1")
    assert failed.status == "failed" and failed.failure_code == "account_closed"
    assert balance("payouts") == 5000
    assert ledger_unbalanced_currencies() == {}


def test_unknown_event_types_are_stored_and_ignored(client):
    deliver_stripe(client, stripe_event("customer.created", {"id": "cus_1", "object": "customer"}))
    process_all()
    assert WebhookEvent.objects.get().status == "ignored"


def test_a_failing_event_is_recorded_with_a_retry_time_and_replay_reprocesses_it(client):
    bad = intent("pi_badcur", "succeeded", currency="xyz")
    deliver_stripe(client, stripe_event("payment_intent.succeeded", bad))
    process_all()
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and event.attempts == 1
    assert "unknown currency" in event.last_error and event.next_retry_at is not None
    assert Payment.objects.count() == 0
    webhook_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.attempts == 2 and event.status == "failed"


# ------------------------------------------------------------------------- Braintree handlers


BRAINTREE_DISPUTE_KINDS = {
    "dispute_opened": "needs_response",
    "dispute_disputed": "under_review",
    "dispute_under_review": "under_review",
    "dispute_won": "won",
    "dispute_lost": "lost",
    "dispute_accepted": "accepted",
    "dispute_auto_accepted": "accepted",
    "dispute_expired": "expired",
}


@pytest.mark.parametrize(("kind", "status"), BRAINTREE_DISPUTE_KINDS.items())
def test_every_braintree_dispute_kind(client, kind, status):
    assert deliver_braintree(client, braintree_sample(kind, f"dsp_{kind}")).status_code == 200
    process_all()
    event = WebhookEvent.objects.get()
    assert event.status == "processed", event.last_error
    record = Dispute.objects.get(gateway="braintree", gateway_dispute_id=f"dsp_{kind}")
    assert record.status == status and record.amount_minor == 10000 and record.reason == "fraud"
    assert record.evidence_due_by is not None and record.payment is not None
    assert balance("disputes", "braintree") == (0 if status == "won" else 10000)


def test_braintree_transaction_settled_and_declined(client):
    deliver_braintree(client, braintree_sample("transaction_settled", "bt_tx1"))
    deliver_braintree(client, braintree_sample("transaction_settlement_declined", "bt_tx2"))
    process_all()
    settled = Payment.objects.get(gateway="braintree", gateway_payment_id="bt_tx1")
    declined = Payment.objects.get(gateway="braintree", gateway_payment_id="bt_tx2")
    assert (settled.status, settled.amount_captured_minor, settled.currency) == ("succeeded", 10000, "USD")
    assert declined.status == "failed" and declined.failure_code
    assert balance("customer_funds", "braintree") == -10000


def test_braintree_subscription_kinds(client):
    deliver_braintree(client, braintree_sample("subscription_charged_successfully", "sub_ok"))
    deliver_braintree(client, braintree_sample("subscription_charged_unsuccessfully", "sub_fail"))
    deliver_braintree(client, braintree_sample("subscription_went_past_due", "sub_due"))
    process_all()
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    ok = Payment.objects.get(gateway_payment_id="sub_ok")
    failed = Payment.objects.get(gateway_payment_id="sub_fail")
    assert (ok.status, ok.amount_minor, ok.subscription_id) == ("succeeded", 4999, "sub_ok")
    assert failed.status == "failed" and DunningPlan.objects.filter(payment=failed, status="active").exists()


def test_braintree_disbursement_and_refund_failed(client):
    deliver_braintree(client, braintree_sample("disbursement", "dsb_1"))
    process_all()
    disbursement = Payout.objects.get(gateway="braintree")
    assert (disbursement.status, disbursement.amount_minor, disbursement.transaction_ids) == (
        "paid",
        10000,
        ["afv56j", "kj8hjk"],
    )
    assert balance("payouts", "braintree") == 10000

    sale = """<notification><timestamp type="datetime">2026-01-01T10:00:00Z</timestamp>
      <kind>transaction_settled</kind><subject><transaction><id>bt_sale9</id><status>settled</status>
      <type>sale</type><currency-iso-code>EUR</currency-iso-code><amount>12.50</amount>
      <credit-card><last-4>1881</last-4><card-type>Visa</card-type></credit-card></transaction></subject>
    </notification>"""
    credit = """<notification><timestamp type="datetime">2026-01-01T11:00:00Z</timestamp>
      <kind>transaction_settled</kind><subject><transaction><id>bt_cr9</id><status>settled</status>
      <type>credit</type><currency-iso-code>EUR</currency-iso-code><amount>12.50</amount>
      <refunded-transaction-id>bt_sale9</refunded-transaction-id></transaction></subject></notification>"""
    failed = credit.replace("transaction_settled", "refund_failed").replace("11:00:00Z", "12:00:00Z")
    for xml in (sale, credit, failed):
        assert deliver_braintree(client, braintree_signed_xml(xml)).status_code == 200
    process_all()
    payment = Payment.objects.get(gateway_payment_id="bt_sale9")
    assert (payment.card_last4, payment.amount_minor, payment.currency) == ("1881", 1250, "EUR")
    assert Refund.objects.get(gateway_refund_id="bt_cr9").status == "failed"
    assert balance("refunds", "braintree", "EUR") == 0 and payment.amount_refunded_minor == 0
    assert ledger_unbalanced_currencies() == {}


def test_braintree_check_kind_is_ignored(client):
    deliver_braintree(client, braintree_sample("check", "check"))
    process_all()
    assert WebhookEvent.objects.get().status == "ignored"
