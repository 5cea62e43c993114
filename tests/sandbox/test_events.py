"""The event builders round-trip through the real SDKs' verification and parsing."""

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import braintree
import pytest
import stripe

from sandbox import stripe_events
from sandbox.braintree_notifications import (
    DISPUTE_KINDS,
    braintree_notification_xml,
    braintree_signed,
    braintree_webhook_fields,
    check_xml,
    disbursement_xml,
    dispute_xml,
    subscription_xml,
    transaction_xml,
)
from sandbox.stripe_events import stripe_event, stripe_object, stripe_signature_header

SECRET = "whsec_test_secret"
PUBLIC_KEY = "sandbox_public"
PRIVATE_KEY = "sandbox_private"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def gateway() -> braintree.BraintreeGateway:
    return braintree.BraintreeGateway(
        braintree.Configuration(
            environment=braintree.Environment.Sandbox,
            merchant_id="sandbox_merchant",
            public_key=PUBLIC_KEY,
            private_key=PRIVATE_KEY,
        )
    )


def _parse(gateway, kind: str, subject: str):
    signature, payload = braintree_signed(
        braintree_notification_xml(kind, subject, timestamp=NOW), public_key=PUBLIC_KEY, private_key=PRIVATE_KEY
    )
    return gateway.webhook_notification.parse(signature, payload)


# --------------------------------------------------------------------------- stripe


@pytest.mark.parametrize(
    "resource", ["payment_intent", "charge", "refund", "dispute", "payout", "balance_transaction", "payment_method"]
)
def test_stripe_object_is_a_fresh_copy_of_the_example_with_overrides(resource):
    pristine = stripe_object(resource)
    first = stripe_object(resource, metadata={"payment_ref": "P-1"}, amount=4200)
    assert first["object"] == resource
    assert first["metadata"] == {"payment_ref": "P-1"}
    assert first["amount"] == 4200
    first["metadata"]["payment_ref"] = "changed"
    first["id"] = "changed"
    next(value for value in first.values() if isinstance(value, dict))["mutated"] = True
    assert stripe_object(resource) == pristine


def test_vendored_fixtures_match_stripes_file_and_name_their_licence():
    vendored = json.loads(stripe_events.VENDORED_FIXTURES.read_text())
    assert "MIT" in vendored["_license"]
    if not stripe_events.SHARED_FIXTURES.is_file():
        pytest.skip(f"shared Stripe fixtures absent ({stripe_events.SHARED_FIXTURES})")
    shared = json.loads(stripe_events.SHARED_FIXTURES.read_text())["resources"]
    for name, obj in vendored["resources"].items():
        assert obj == shared[name], name


def test_a_resource_in_neither_fixtures_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(stripe_events, "_shared", None)
    monkeypatch.setenv("STRIPE_FIXTURES_PATH", str(tmp_path / "absent.json"))
    with pytest.raises(stripe_events.StripeFixturesMissing, match="STRIPE_FIXTURES_PATH"):
        stripe_object("invoice")


def test_stripe_event_verifies_and_parses_with_the_sdk():
    intent = stripe_object(
        "payment_intent", id="pi_sandbox", amount=2500, status="succeeded", metadata={"payment_ref": "P-7"}
    )
    event = stripe_event(
        "payment_intent.succeeded",
        intent,
        created=1_700_000_000,
        event_id="evt_sandbox",
        previous_attributes={"status": "processing"},
    )
    payload = json.dumps(event).encode()
    header = stripe_signature_header(payload, SECRET)
    assert header.startswith("t=") and ",v1=" in header

    parsed = stripe.Webhook.construct_event(payload, header, SECRET)
    assert parsed.id == "evt_sandbox"
    assert parsed.type == "payment_intent.succeeded"
    assert parsed.created == 1_700_000_000
    assert parsed.livemode is False
    assert parsed.api_version == stripe_events.STRIPE_API_VERSION
    assert parsed.data.object.id == "pi_sandbox"
    assert parsed.data.object.amount == 2500
    assert parsed.data.object.metadata["payment_ref"] == "P-7"
    assert parsed.data.previous_attributes["status"] == "processing"


def test_stripe_event_ids_are_unique_and_shaped_like_stripes():
    ids = {stripe_event("charge.succeeded", stripe_object("charge"))["id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(event_id.startswith("evt_") and len(event_id) == 28 for event_id in ids)


def test_a_wrong_secret_or_an_old_timestamp_fails_sdk_verification():
    payload = json.dumps(stripe_event("charge.refunded", stripe_object("charge"))).encode()
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stripe_signature_header(payload, "whsec_other"), SECRET)
    stale = stripe_signature_header(payload, SECRET, timestamp=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(payload, stale, SECRET)


def test_stripe_signature_accepts_text_payloads_with_non_ascii():
    payload = json.dumps(stripe_event("charge.succeeded", stripe_object("charge", description="Café Zoë")))
    stripe.Webhook.construct_event(payload, stripe_signature_header(payload, SECRET), SECRET)


# --------------------------------------------------------------------------- braintree


def test_braintree_signing_matches_the_sdks_own_sample_scheme(gateway):
    sample = gateway.webhook_testing.sample_notification("check", "ignored")
    from base64 import decodebytes

    xml = decodebytes(sample["bt_payload"]).decode()
    signature, payload = braintree_signed(xml, public_key=PUBLIC_KEY, private_key=PRIVATE_KEY)
    assert (signature, payload) == (sample["bt_signature"], sample["bt_payload"].decode())


def test_check_notification(gateway):
    notification = _parse(gateway, "check", check_xml())
    assert notification.kind == "check"
    assert notification.subject == {"check": True}
    assert notification.timestamp == NOW.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("kind", "status", "code", "text"),
    [
        ("transaction_settled", "settled", "1000", "Approved"),
        ("transaction_settlement_declined", "settlement_declined", "4001", "Settlement Declined"),
    ],
)
def test_transaction_notifications(gateway, kind, status, code, text):
    subject = transaction_xml(
        transaction_id="txn123",
        amount=Decimal("10.25"),
        currency_iso_code="EUR",
        status=status,
        processor_response_code=code,
        processor_response_text=text,
        created_at=NOW - timedelta(days=1),
        updated_at=NOW,
        customer_email="ada@example.com",
        card_last_4="1881",
        card_type="Visa",
        order_id="order-42",
        custom_fields={"payment_ref": "P-42"},
        service_fee_amount="0.60",
        disbursement_date=date(2025, 3, 5),
        settlement_amount="10.25",
        subscription_id="sub1",
        status_history=[("authorized", NOW - timedelta(days=1)), (status, NOW)],
    )
    notification = _parse(gateway, kind, subject)
    transaction = notification.transaction
    assert notification.kind == kind
    assert transaction.id == "txn123"
    assert transaction.amount == Decimal("10.25")
    assert transaction.currency_iso_code == "EUR"
    assert transaction.status == status
    assert transaction.type == "sale"
    assert transaction.processor_response_code == code
    assert transaction.processor_response_text == text
    assert transaction.created_at == (NOW - timedelta(days=1)).replace(tzinfo=None)
    assert transaction.updated_at == NOW.replace(tzinfo=None)
    assert transaction.customer_details.email == "ada@example.com"
    assert transaction.credit_card_details.last_4 == "1881"
    assert transaction.credit_card_details.card_type == "Visa"
    assert transaction.order_id == "order-42"
    assert transaction.custom_fields == {"payment_ref": "P-42"}
    assert Decimal(transaction.service_fee_amount) == Decimal("0.60")
    assert transaction.disbursement_details.disbursement_date == date(2025, 3, 5)
    assert transaction.disbursement_details.settlement_amount == Decimal("10.25")
    assert transaction.subscription_id == "sub1"
    assert [event.status for event in transaction.status_history] == ["authorized", status]


def test_refund_failed_is_a_credit_transaction(gateway):
    subject = transaction_xml(
        transaction_id="refund1",
        amount="4.00",
        status="processor_declined",
        transaction_type="credit",
        refunded_transaction_id="txn123",
        processor_response_code="2005",
        processor_response_text="Invalid Credit Card Number",
    )
    notification = _parse(gateway, "refund_failed", subject)
    assert notification.kind == "refund_failed"
    assert notification.transaction.type == "credit"
    assert notification.transaction.status == "processor_declined"
    assert notification.transaction.refunded_transaction_id == "txn123"
    assert notification.transaction.amount == Decimal("4.00")


@pytest.mark.parametrize("kind", sorted(DISPUTE_KINDS))
def test_dispute_notifications(gateway, kind):
    status = kind.removeprefix("dispute_").replace("opened", "open")
    opened = NOW - timedelta(days=3)
    subject = dispute_xml(
        dispute_id="dp1",
        amount_disputed="99.00",
        currency_iso_code="USD",
        kind="chargeback",
        reason="fraud",
        status=status,
        reply_by_date=date(2025, 3, 20),
        received_date=date(2025, 3, 1),
        created_at=opened,
        updated_at=NOW,
        transaction_id="txn9",
        transaction_amount="120.00",
        status_history=[("open", opened), (status, NOW)] if status != "open" else [("open", opened)],
    )
    notification = _parse(gateway, kind, subject)
    dispute = notification.dispute
    assert notification.kind == kind
    assert dispute.id == "dp1"
    assert dispute.status == status
    assert dispute.reason == "fraud"
    assert dispute.kind == "chargeback"
    assert dispute.amount_disputed == Decimal("99.00")
    assert dispute.currency_iso_code == "USD"
    assert dispute.reply_by_date == date(2025, 3, 20)
    assert dispute.received_date == date(2025, 3, 1)
    assert dispute.transaction.id == "txn9"
    assert dispute.transaction.amount == Decimal("120.00")
    assert dispute.status_history[0].status == "open"
    assert dispute.status_history[-1].timestamp == (NOW if status != "open" else opened).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("kind", "subscription_status", "transaction_status"),
    [
        ("subscription_charged_successfully", "Active", "submitted_for_settlement"),
        ("subscription_charged_unsuccessfully", "Active", "failed"),
        ("subscription_went_past_due", "Past Due", "processor_declined"),
    ],
)
def test_subscription_notifications(gateway, kind, subscription_status, transaction_status):
    charge = transaction_xml(
        transaction_id="subtxn", amount="49.99", status=transaction_status, subscription_id="sub1", created_at=NOW
    )
    notification = _parse(
        gateway, kind, subscription_xml(subscription_id="sub1", status=subscription_status, transactions=[charge])
    )
    assert notification.kind == kind
    assert notification.subscription.id == "sub1"
    assert notification.subscription.status == subscription_status
    assert [(t.id, t.status, t.amount) for t in notification.subscription.transactions] == [
        ("subtxn", transaction_status, Decimal("49.99"))
    ]


def test_disbursement_notification(gateway):
    subject = disbursement_xml(
        disbursement_id="disb1",
        amount="1234.56",
        disbursement_date=date(2025, 3, 6),
        transaction_ids=["a1", "b2"],
        currency_iso_code="GBP",
    )
    notification = _parse(gateway, "disbursement", subject)
    disbursement = notification.disbursement
    assert disbursement.id == "disb1"
    assert disbursement.amount == Decimal("1234.56")
    assert disbursement.transaction_ids == ["a1", "b2"]
    assert disbursement.disbursement_date == date(2025, 3, 6)
    assert disbursement.success is True
    assert disbursement.retry is False
    assert disbursement.merchant_account.currency_iso_code == "GBP"


def test_webhook_fields_and_escaping_survive_parsing(gateway):
    subject = transaction_xml(transaction_id="t<&>", amount="1", order_id='a "quoted" & <odd> order é')
    fields = braintree_webhook_fields(
        "transaction_settled", subject, timestamp=NOW, public_key=PUBLIC_KEY, private_key=PRIVATE_KEY
    )
    notification = gateway.webhook_notification.parse(fields["bt_signature"], fields["bt_payload"])
    assert notification.transaction.id == "t<&>"
    assert notification.transaction.order_id == 'a "quoted" & <odd> order é'


def test_a_tampered_payload_or_another_key_is_rejected(gateway):
    signature, payload = braintree_signed(
        braintree_notification_xml("check", check_xml(), timestamp=NOW), public_key=PUBLIC_KEY, private_key="other"
    )
    with pytest.raises(braintree.exceptions.InvalidSignatureError):
        gateway.webhook_notification.parse(signature, payload)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: braintree_notification_xml("dispute_openned", check_xml(), timestamp=NOW), "Unsupported"),
        (lambda: braintree_notification_xml("check", check_xml(), timestamp=datetime(2025, 1, 1)), "aware"),  # noqa: DTZ001
        (lambda: transaction_xml(transaction_id="t", amount="1", card_last_4="4111111111111111"), "four digits"),
        (lambda: transaction_xml(transaction_id="t", amount=1.5), "float"),
        (lambda: dispute_xml(dispute_id="d", amount_disputed=1, transaction_id="t", transaction_amount=1, status="x"),
         "status"),
    ],
)  # fmt: skip
def test_builders_refuse_mistakes_clearly(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
