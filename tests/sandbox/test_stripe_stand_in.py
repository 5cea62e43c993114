"""The Stripe stand-in, driven by the real stripe SDK, and the webhooks it sends."""

import urllib.error
import urllib.request

import pytest
import stripe
from django.conf import settings

from sandbox.stripe_api import charge_fee, payout_fee
from tests.sandbox.conftest import wait_for

METADATA = {"payment_ref": "pay_42", "order_id": "ORD-1"}


def _pay(client, method: str, **params):
    return client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "usd", "payment_method": method, "confirm": True, "metadata": METADATA}
        | params
    )


def test_a_successful_payment_with_fee_and_signed_webhooks(stripe_client, receiver):
    intent = _pay(stripe_client, "pm_card_visa", expand=["latest_charge.balance_transaction"])

    assert intent.status == "succeeded"
    assert intent.amount_received == 2500
    assert intent.metadata.to_dict() == METADATA
    transaction = intent.latest_charge.balance_transaction
    assert transaction.fee == charge_fee(2500) == 103  # 2.9% of 25.00 is 0.725, rounded half up, plus 0.30
    assert transaction.net == 2500 - transaction.fee
    assert transaction.fee_details[0].type == "stripe_fee"
    assert intent.latest_charge.payment_method_details.card.last4 == "4242"

    wait_for(lambda: len(receiver.stripe_types(intent.id)) == 2, what="payment intent events")
    assert receiver.stripe_types(intent.id) == ["payment_intent.created", "payment_intent.succeeded"]
    assert "charge.succeeded" in receiver.stripe_types()
    for request in receiver.requests:
        event = stripe.Webhook.construct_event(
            request["body"], request["headers"]["Stripe-Signature"], settings.STRIPE_WEBHOOK_SECRETS[0]
        )
        assert event.data.object.metadata.to_dict() == METADATA


@pytest.mark.parametrize(
    ("method", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ],
)
def test_declines_carry_stripes_codes(stripe_client, receiver, method, code, decline_code):
    with pytest.raises(stripe.CardError) as raised:
        _pay(stripe_client, method)

    error = raised.value
    assert error.http_status == 402
    assert error.code == code
    assert error.error.decline_code == decline_code
    intent = error.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == decline_code
    assert intent.payment_method is None  # Stripe detaches a declined method
    charge = stripe_client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.failure_code, charge.outcome.reason) == ("failed", code, decline_code)
    wait_for(lambda: "payment_intent.payment_failed" in receiver.stripe_types(intent.id), what="payment_failed")
    assert "charge.failed" in receiver.stripe_types()


def test_three_d_secure_requires_action_then_succeeds(stripe_client, receiver):
    intent = _pay(stripe_client, "pm_card_threeDSecure2Required")
    assert intent.status == "requires_action"
    assert intent.next_action.type == "use_stripe_sdk"

    confirmed = stripe_client.v1.payment_intents.confirm(intent.id)  # after the customer's challenge

    assert confirmed.status == "succeeded"
    charge = stripe_client.v1.charges.retrieve(confirmed.latest_charge)
    assert charge.payment_method_details.card.three_d_secure.result == "authenticated"
    wait_for(lambda: "payment_intent.succeeded" in receiver.stripe_types(intent.id), what="succeeded event")
    assert receiver.stripe_types(intent.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.succeeded",
    ]


def test_a_failed_challenge_and_an_off_session_payment_needing_authentication(stripe_client, control):
    intent = _pay(stripe_client, "pm_card_authenticationRequired")
    control.post(f"payment_intents/{intent.id}/authenticate", {"outcome": "fail"})
    failed = stripe_client.v1.payment_intents.retrieve(intent.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"

    with pytest.raises(stripe.CardError) as raised:
        _pay(stripe_client, "pm_card_threeDSecure2Required", off_session=True)
    assert raised.value.error.decline_code == "authentication_required"


def test_manual_capture_partial_and_cancel(stripe_client, receiver):
    intent = _pay(stripe_client, "pm_card_mastercard", capture_method="manual")
    assert (intent.status, intent.amount_capturable) == ("requires_capture", 2500)

    captured = stripe_client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 2000})

    assert (captured.status, captured.amount_received) == ("succeeded", 2000)
    charge = stripe_client.v1.charges.retrieve(captured.latest_charge, params={"expand": ["balance_transaction"]})
    assert (charge.amount_captured, charge.amount_refunded) == (2000, 500)
    assert charge.balance_transaction.fee == charge_fee(2000)
    wait_for(lambda: "charge.captured" in receiver.stripe_types(), what="charge.captured")
    assert receiver.stripe_types(intent.id)[:2] == [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
    ]

    other = _pay(stripe_client, "pm_card_visa", capture_method="manual")
    canceled = stripe_client.v1.payment_intents.cancel(other.id, params={"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.payment_intents.capture(other.id)
    assert raised.value.code == "payment_intent_unexpected_state"


def test_refunds_partial_then_the_rest_then_none(stripe_client, receiver):
    intent = _pay(stripe_client, "pm_card_visa", metadata={"payment_ref": "pay_r"})

    partial = stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    rest = stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "metadata": {"refund_ref": "r2"}})

    assert (partial.status, partial.amount, rest.amount) == ("succeeded", 1000, 1500)
    assert rest.metadata.to_dict() == {"refund_ref": "r2"}
    refund_transaction = stripe_client.v1.balance_transactions.retrieve(partial.balance_transaction)
    assert (refund_transaction.amount, refund_transaction.type) == (-1000, "refund")
    charge = stripe_client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (2500, True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.refunds.create(params={"payment_intent": intent.id})
    assert raised.value.code == "charge_already_refunded"
    wait_for(lambda: receiver.stripe_types().count("charge.refunded") == 2, what="two charge.refunded")
    refunded = [event for event in receiver.stripe_events() if event["type"] == "charge.refunded"]
    assert [event["data"]["object"]["amount_refunded"] for event in refunded] == [1000, 2500]
    assert refunded[0]["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}
    assert refunded[0]["data"]["object"]["metadata"] == {"payment_ref": "pay_r"}


def test_a_refund_larger_than_the_charge_is_refused(stripe_client):
    intent = _pay(stripe_client, "pm_card_visa")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2501})
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")


def test_the_refund_fail_card_sends_refund_updated_failed(stripe_client, receiver):
    intent = _pay(stripe_client, "pm_card_refundFail")
    refund = stripe_client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.status == "succeeded"

    update = wait_for(
        lambda: [event for event in receiver.stripe_events() if event["type"] == "charge.refund.updated"],
        what="charge.refund.updated",
    )[0]
    assert update["data"]["object"]["id"] == refund.id
    assert update["data"]["object"]["status"] == "failed"
    assert update["data"]["previous_attributes"]["status"] == "succeeded"
    assert stripe_client.v1.charges.retrieve(intent.latest_charge).amount_refunded == 0


def test_a_dispute_opens_later_on_the_dispute_card_and_closes_on_request(stripe_client, receiver, control):
    intent = _pay(stripe_client, "pm_card_createDispute")
    assert intent.status == "succeeded"

    wait_for(lambda: "charge.dispute.funds_withdrawn" in receiver.stripe_types(), what="dispute events")
    created = next(event for event in receiver.stripe_events() if event["type"] == "charge.dispute.created")
    dispute = created["data"]["object"]
    assert (dispute["charge"], dispute["payment_intent"], dispute["amount"]) == (intent.latest_charge, intent.id, 2500)
    assert dispute["status"] == "needs_response"
    assert dispute["balance_transactions"][0]["fee"] == 1500

    assert control.post(f"disputes/{dispute['id']}", {"status": "won"})["status"] == "won"
    wait_for(lambda: "charge.dispute.funds_reinstated" in receiver.stripe_types(), what="funds_reinstated")
    assert receiver.stripe_types(dispute["id"]) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    assert stripe_client.v1.disputes.retrieve(dispute["id"]).status == "won"


def test_a_dispute_on_request_and_a_payout_with_its_fee(stripe_client, receiver, control):
    intent = _pay(stripe_client, "pm_card_visa", amount=10_000)
    opened = control.post("disputes", {"payment_intent": intent.id, "amount": 4000, "reason": "product_not_received"})
    assert opened["gateway"] == "stripe"
    control.post(f"disputes/{opened['dispute']}", {"status": "lost"})

    payout = control.post("payouts", {"gateway": "stripe", "currency": "usd"})

    balance = 10_000 - charge_fee(10_000) - 4000 - 1500
    assert payout["fee"] == payout_fee(payout["amount"])
    assert payout["amount"] + payout["fee"] <= balance < payout["amount"] + payout["fee"] + 2
    paid = wait_for(lambda: [e for e in receiver.stripe_events() if e["type"] == "payout.paid"], what="payout.paid")
    assert paid[0]["data"]["object"]["id"] == payout["payout"]
    included = stripe_client.v1.balance_transactions.list(params={"payout": payout["payout"], "limit": 100})
    assert {transaction.type for transaction in included.data} == {"charge", "adjustment", "payout"}
    status, body = control.call("POST", "payouts", {"gateway": "stripe", "currency": "usd"})
    assert status == 400 and body["error"]["code"] == "balance_insufficient"


def test_idempotency_keys_replay_and_refuse_other_parameters(stripe_client):
    params = {"amount": 1000, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    first = stripe_client.v1.payment_intents.create(params=params, options={"idempotency_key": "order-7"})
    again = stripe_client.v1.payment_intents.create(params=params, options={"idempotency_key": "order-7"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_client.v1.payment_intents.list(params={"limit": 100}).data) == 1

    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.payment_intents.create(
            params={**params, "amount": 1001}, options={"idempotency_key": "order-7"}
        )


def test_a_replayed_decline_is_the_same_decline(stripe_client):
    params = {"amount": 1000, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as raised:
            stripe_client.v1.payment_intents.create(params=params, options={"idempotency_key": "declined-once"})
        errors.append(raised.value.error.payment_intent.id)
    assert errors[0] == errors[1]


def test_a_wrong_api_key_is_refused_like_stripe(sandbox):
    client = stripe.StripeClient("sk_test_not_the_right_one", base_addresses={"api": sandbox.url})
    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.payment_intents.list()
    assert raised.value.http_status == 401
    assert "sk_test_not_the_right_one" not in str(raised.value)


def test_card_numbers_are_refused_and_never_echoed(stripe_client, control):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method_data": {"type": "card", "card": {"number": "4242424242424242", "cvc": "123"}},
            }
        )
    assert raised.value.param.startswith("payment_method_data[card]")
    assert "4242424242424242" not in str(raised.value.json_body)
    assert stripe_client.v1.payment_intents.list().data == []


def test_unknown_parameters_and_payment_methods_are_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", "colour": "red"})
    assert raised.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _pay(stripe_client, "pm_card_unheard_of")
    assert raised.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_intents.retrieve("pi_missing")


def test_lists_page_newest_first(stripe_client):
    ids = [_pay(stripe_client, "pm_card_visa").id for _ in range(3)]
    page = stripe_client.v1.payment_intents.list(params={"limit": 2})
    assert [intent.id for intent in page.data] == ids[::-1][:2]
    assert page.has_more is True
    rest = stripe_client.v1.payment_intents.list(params={"limit": 2, "starting_after": page.data[-1].id})
    assert [intent.id for intent in rest.data] == [ids[0]]
    assert rest.has_more is False


def test_a_bank_debit_processes_then_succeeds(stripe_client, receiver):
    intent = stripe_client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "usd", "payment_method": "pm_usBankAccount_success", "confirm": True}
    )
    assert intent.status == "processing"
    wait_for(lambda: "payment_intent.succeeded" in receiver.stripe_types(intent.id), what="succeeded")
    assert receiver.stripe_types(intent.id) == [
        "payment_intent.created",
        "payment_intent.processing",
        "payment_intent.succeeded",
    ]


def test_the_three_d_secure_page_returns_the_customer_with_the_outcome(stripe_client, sandbox):
    intent = _pay(stripe_client, "pm_card_threeDSecure2Required", return_url="https://shop.example/return?o=1")
    assert intent.next_action.type == "redirect_to_url"
    page_url = intent.next_action.redirect_to_url.url
    assert page_url == f"{sandbox.url}/_sandbox/3ds/{intent.id}"
    with urllib.request.urlopen(page_url, timeout=10) as page:  # noqa: S310 (the fixture's http URL)
        assert b"Complete" in page.read()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(urllib.request.Request(f"{page_url}/succeed", data=b"", method="POST"), timeout=10)  # noqa: S310
    assert answer.value.code == 303
    assert answer.value.headers["Location"] == (
        f"https://shop.example/return?o=1&payment_intent={intent.id}&redirect_status=succeeded"
    )
    assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
