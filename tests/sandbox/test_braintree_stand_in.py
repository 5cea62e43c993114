"""The Braintree stand-in, driven by the real braintree SDK, and the notifications it sends."""

from decimal import Decimal

import braintree
import pytest

from tests.sandbox.conftest import wait_for


def _sale(gateway, amount="10.00", **params):
    return gateway.transaction.sale(
        {
            "amount": amount,
            "payment_method_nonce": "fake-valid-nonce",
            "order_id": "ORD-9",
            "customer": {"email": "ada@example.com"},
            "custom_fields": {"payment_ref": "pay_9"},
            "options": {"submit_for_settlement": True},
        }
        | params
    )


def _notifications(receiver, gateway, kind=None):
    parsed = [
        gateway.webhook_notification.parse(f["bt_signature"], f["bt_payload"]) for f in receiver.braintree_fields()
    ]
    return [notification for notification in parsed if kind is None or notification.kind == kind]


def test_a_sale_settles_and_sends_a_verified_transaction_settled(braintree_gateway, receiver):
    result = _sale(braintree_gateway)

    assert result.is_success
    transaction = result.transaction
    assert (transaction.status, transaction.amount, transaction.type) == (
        "submitted_for_settlement",
        Decimal("10.00"),
        "sale",
    )
    assert transaction.credit_card_details.last_4 == "1881"
    assert transaction.customer_details.email == "ada@example.com"
    assert transaction.custom_fields == {"payment_ref": "pay_9"}

    settled = wait_for(lambda: _notifications(receiver, braintree_gateway, "transaction_settled"), what="settlement")
    assert settled[0].transaction.id == transaction.id
    assert settled[0].transaction.status == "settled"
    assert settled[0].transaction.order_id == "ORD-9"
    assert braintree_gateway.transaction.find(transaction.id).status == "settled"


@pytest.mark.parametrize(
    ("amount", "status", "code", "text"),
    [
        ("2000.00", "processor_declined", "2000", "Do Not Honor"),
        ("2001.00", "processor_declined", "2001", "Insufficient Funds"),
        ("2004.00", "processor_declined", "2004", "Expired Card"),
        ("2999.00", "processor_declined", "2999", "Processor Declined"),
        ("3000.00", "failed", "3000", "Processor Network Unavailable - Try Again"),
    ],
)
def test_magic_amounts_decline_like_braintrees_sandbox(braintree_gateway, amount, status, code, text):
    result = _sale(braintree_gateway, amount)

    assert not result.is_success
    assert result.message == text
    assert (result.transaction.status, result.transaction.processor_response_code) == (status, code)
    assert result.transaction.processor_response_text == text
    assert braintree_gateway.transaction.find(result.transaction.id).status == status


def test_validation_errors_come_back_as_braintree_error_results(braintree_gateway):
    unknown = _sale(braintree_gateway, payment_method_nonce="not-a-nonce")
    missing = braintree_gateway.transaction.sale({"payment_method_nonce": "fake-valid-nonce"})
    card = braintree_gateway.transaction.sale({"amount": "1.00", "credit_card": {"number": "4111111111111111"}})

    assert [error.code for error in unknown.errors.deep_errors] == ["91565"]
    assert missing.errors.for_object("transaction").on("amount")[0].code == "81502"
    assert not card.is_success and "nonces only" in card.message


def test_refund_after_settlement_only_and_never_more_than_the_sale(braintree_gateway, receiver):
    sale = _sale(braintree_gateway, "50.00").transaction
    early = braintree_gateway.transaction.refund(sale.id, "10.00")
    assert not early.is_success
    assert early.errors.deep_errors[0].code == "91506"

    wait_for(lambda: braintree_gateway.transaction.find(sale.id).status == "settled", what="settlement")
    refund = braintree_gateway.transaction.refund(sale.id, {"amount": "20.00", "order_id": "refund-1"})
    too_much = braintree_gateway.transaction.refund(sale.id, "30.01")
    rest = braintree_gateway.transaction.refund(sale.id)

    assert refund.is_success
    assert (refund.transaction.type, refund.transaction.amount) == ("credit", Decimal("20.00"))
    assert refund.transaction.refunded_transaction_id == sale.id
    assert refund.transaction.order_id == "refund-1"
    assert too_much.errors.deep_errors[0].code == "91521"
    assert rest.transaction.amount == Decimal("30.00")
    assert braintree_gateway.transaction.find(sale.id).refund_ids == [refund.transaction.id, rest.transaction.id]


def test_a_failing_refund_sends_refund_failed(braintree_gateway, receiver, control):
    sale = _sale(braintree_gateway, "25.00").transaction
    wait_for(lambda: braintree_gateway.transaction.find(sale.id).status == "settled", what="settlement")
    refund = braintree_gateway.transaction.refund(sale.id, "5.00").transaction

    control.post(f"refunds/{refund.id}/fail")

    failed = wait_for(lambda: _notifications(receiver, braintree_gateway, "refund_failed"), what="refund_failed")
    assert failed[0].transaction.id == refund.id
    assert failed[0].transaction.type == "credit"
    assert failed[0].transaction.status == "processor_declined"
    assert failed[0].transaction.refunded_transaction_id == sale.id


def test_authorize_then_submit_or_void(braintree_gateway):
    authorized = _sale(braintree_gateway, "40.00", options={"submit_for_settlement": False}).transaction
    assert authorized.status == "authorized"
    submitted = braintree_gateway.transaction.submit_for_settlement(authorized.id, "35.00")
    assert (submitted.transaction.status, submitted.transaction.amount) == (
        "submitted_for_settlement",
        Decimal("35.00"),
    )

    other = _sale(braintree_gateway, "15.00", options={"submit_for_settlement": False}).transaction
    voided = braintree_gateway.transaction.void(other.id)
    assert voided.transaction.status == "voided"
    assert braintree_gateway.transaction.void(other.id).errors.deep_errors[0].code == "91504"
    with pytest.raises(braintree.exceptions.NotFoundError):
        braintree_gateway.transaction.find("nosuchid")


def test_settlement_declined_amount(braintree_gateway, receiver):
    sale = _sale(braintree_gateway, "4001.00").transaction
    declined = wait_for(
        lambda: _notifications(receiver, braintree_gateway, "transaction_settlement_declined"), what="declined"
    )
    assert declined[0].transaction.id == sale.id
    assert declined[0].transaction.status == "settlement_declined"


def test_disputes_opened_and_resolved_through_the_control_api(braintree_gateway, receiver, control):
    sale = _sale(braintree_gateway, "80.00").transaction
    wait_for(lambda: braintree_gateway.transaction.find(sale.id).status == "settled", what="settlement")

    opened = control.post("disputes", {"transaction": sale.id, "amount": "60.00", "reason": "fraud"})
    control.post(f"disputes/{opened['dispute']}", {"status": "won"})

    wait_for(lambda: _notifications(receiver, braintree_gateway, "dispute_won"), what="dispute_won")
    first, last = (
        _notifications(receiver, braintree_gateway, "dispute_opened")[0],
        _notifications(receiver, braintree_gateway, "dispute_won")[0],
    )
    assert first.dispute.id == last.dispute.id == opened["dispute"]
    assert first.dispute.status == "open"
    assert first.dispute.amount_disputed == Decimal("60.00")
    assert first.dispute.transaction.id == sale.id
    assert first.dispute.reply_by_date > first.dispute.received_date
    assert [entry.status for entry in last.dispute.status_history] == ["open", "won"]
    assert braintree_gateway.dispute.find(opened["dispute"]).status == "won"
    status, body = control.call("POST", f"disputes/{opened['dispute']}", {"status": "lost"})
    assert status == 400 and "already closed" in body["error"]


def test_accepting_a_dispute_through_the_sdk(braintree_gateway, receiver, control):
    sale = _sale(braintree_gateway, "12.00").transaction
    wait_for(lambda: braintree_gateway.transaction.find(sale.id).status == "settled", what="settlement")
    dispute_id = control.post("disputes", {"transaction": sale.id})["dispute"]

    assert braintree_gateway.dispute.accept(dispute_id).is_success
    accepted = wait_for(lambda: _notifications(receiver, braintree_gateway, "dispute_accepted"), what="accepted")
    assert accepted[0].dispute.id == dispute_id


def test_a_disbursement_lists_the_settled_transactions_net_of_fees(braintree_gateway, receiver, control):
    sales = [_sale(braintree_gateway, amount).transaction for amount in ("100.00", "20.00")]
    wait_for(
        lambda: all(braintree_gateway.transaction.find(sale.id).status == "settled" for sale in sales), what="settled"
    )

    payout = control.post("payouts", {"gateway": "braintree"})

    assert Decimal(payout["amount"]) == Decimal("100.00") - Decimal("3.08") + Decimal("20.00") - Decimal("1.01")
    notification = wait_for(lambda: _notifications(receiver, braintree_gateway, "disbursement"), what="disbursement")[0]
    assert notification.disbursement.id == payout["disbursement"]
    assert sorted(notification.disbursement.transaction_ids) == sorted(sale.id for sale in sales)
    assert notification.disbursement.amount == Decimal(payout["amount"])
    assert notification.disbursement.success is True
    assert braintree_gateway.transaction.find(sales[0].id).disbursement_details.disbursement_date is not None
    assert control.call("POST", "payouts", {"gateway": "braintree"})[0] == 400  # nothing new to pay out


def test_subscription_charges_and_retry_charge(braintree_gateway, receiver, control):
    subscription_id = control.post("subscriptions", {"price": "9.99", "plan_id": "monthly"})["subscription"]

    control.post(f"subscriptions/{subscription_id}/charge", {"amount": "2001.00"})
    retried = braintree_gateway.subscription.retry_charge(subscription_id, Decimal("9.99"), True)

    assert retried.is_success
    assert retried.transaction.subscription_id == subscription_id
    wait_for(lambda: _notifications(receiver, braintree_gateway, "subscription_charged_successfully"), what="charged")
    kinds = [notification.kind for notification in _notifications(receiver, braintree_gateway)]
    assert kinds[:3] == [
        "subscription_charged_unsuccessfully",
        "subscription_went_past_due",
        "subscription_charged_successfully",
    ]
    past_due = _notifications(receiver, braintree_gateway, "subscription_went_past_due")[0]
    assert past_due.subscription.status == "Past Due"
    assert past_due.subscription.transactions[0].processor_response_code == "2001"


def test_the_check_notification(braintree_gateway, receiver, control):
    control.post("webhooks/check")
    check = wait_for(lambda: _notifications(receiver, braintree_gateway, "check"), what="check")[0]
    assert check.subject == {"check": True}


def test_wrong_keys_are_an_authentication_error(sandbox, credentials):
    from sandbox.sdk import braintree_gateway

    gateway = braintree_gateway(
        sandbox.url,
        merchant_id=credentials.braintree_merchant_id,
        public_key=credentials.braintree_public_key,
        private_key="wrong",
    )
    with pytest.raises(braintree.exceptions.AuthenticationError):
        gateway.transaction.find("anything")


def test_void_only_before_settlement_and_refund_only_after(braintree_gateway, sandbox, receiver):
    from sandbox.braintree_api import BraintreeControlError

    sandbox.app.configure({"lifecycle_delay_ms": 600_000})  # settlement only when the test says
    sale = _sale(braintree_gateway, "25.00").transaction
    assert braintree_gateway.transaction.find(sale.id).status == "submitted_for_settlement"
    early = braintree_gateway.transaction.refund(sale.id)
    assert not early.is_success and early.errors.deep_errors[0].code == "91506"

    voided = braintree_gateway.transaction.void(sale.id)
    assert voided.is_success and voided.transaction.status == "voided"
    assert voided.transaction.amount == Decimal("25.00")
    found = braintree_gateway.transaction.find(sale.id)
    assert found.status == "voided" and [entry.status for entry in found.status_history][-1] == "voided"
    # A voided sale never settles, cannot be refunded or voided again.
    with pytest.raises(BraintreeControlError):
        sandbox.app.braintree.settle_now(sale.id)
    assert braintree_gateway.transaction.refund(sale.id).errors.deep_errors[0].code == "91506"
    assert braintree_gateway.transaction.void(sale.id).errors.deep_errors[0].code == "91504"

    other = _sale(braintree_gateway, "30.00").transaction
    sandbox.app.braintree.settle_now(other.id)
    assert braintree_gateway.transaction.find(other.id).status == "settled"
    settled = wait_for(lambda: _notifications(receiver, braintree_gateway, "transaction_settled"), what="settlement")
    assert [notification.transaction.id for notification in settled] == [other.id]
    late = braintree_gateway.transaction.void(other.id)
    assert not late.is_success and late.errors.deep_errors[0].code == "91504"
    refund = braintree_gateway.transaction.refund(other.id)
    assert refund.is_success and refund.transaction.refunded_transaction_id == other.id
    with pytest.raises(braintree.exceptions.NotFoundError):
        braintree_gateway.transaction.void("nosuchid")
