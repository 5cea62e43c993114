"""The Braintree half of the stand-in: transactions, settlement, refunds, disputes, disbursements.

Behaviour follows Braintree's sandbox: payment method nonces such as ``fake-valid-nonce`` stand
for cards, amounts from 2000.00 to 2999.99 are declined by the processor with that response
code, 3000.00-3000.99 fail ("Processor Network Unavailable"), and 4001.00 is declined at
settlement. Transactions submitted for settlement settle after ``lifecycle_delay_ms`` and
the webhooks Braintree would send (``transaction_settled``, ``refund_failed``, ``dispute_*``,
``disbursement``) are signed with the app's key pair. State is in memory only.

Answers use Braintree's XML: ``201 <transaction>`` on success, ``422 <api-error-response>``
for validation errors and processor declines, exactly as the SDK expects to parse them.
"""

from __future__ import annotations

import secrets
import string
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

from sandbox.bounded import BoundedStore
from sandbox.braintree_notifications import (
    braintree_notification_xml,
    check_xml,
    disbursement_xml,
    dispute_xml,
    subscription_xml,
    transaction_xml,
)
from sandbox.delivery import Scheduler, WebhookDispatcher

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("99999999.99")
# Braintree's standard pricing, deducted from disbursements: 2.59% + 0.49 per sale.
FEE_BASIS_POINTS = 259
FEE_FIXED = Decimal("0.49")
MAX_BODY_DEPTH = 10
# In-memory limits (oldest forgotten first), so a never-ending demo keeps a steady footprint.
MAX_TRANSACTIONS = 10_000
MAX_DISPUTES = 2_000

_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class TestNonce:
    card_type: str
    last_4: str
    # ("processor_declined" | "failed" | "gateway_rejected", code, text) or a validation error (code, message)
    outcome: tuple[str, str, str] | None = None
    validation_error: tuple[str, str] | None = None


TEST_NONCES: dict[str, TestNonce] = {
    "fake-valid-nonce": TestNonce("Visa", "1881"),
    "fake-valid-visa-nonce": TestNonce("Visa", "1881"),
    "fake-valid-mastercard-nonce": TestNonce("MasterCard", "4444"),
    "fake-valid-amex-nonce": TestNonce("American Express", "0005"),
    "fake-valid-discover-nonce": TestNonce("Discover", "1117"),
    "fake-valid-debit-nonce": TestNonce("Visa", "1881"),
    "fake-processor-declined-visa-nonce": TestNonce("Visa", "0002", ("processor_declined", "2000", "Do Not Honor")),
    "fake-processor-declined-mastercard-nonce": TestNonce(
        "MasterCard", "4444", ("processor_declined", "2000", "Do Not Honor")
    ),
    "fake-processor-failure-visa-nonce": TestNonce(
        "Visa", "0119", ("failed", "3000", "Processor Network Unavailable - Try Again")
    ),
    "fake-gateway-rejected-fraud-valid-nonce": TestNonce(
        "Visa", "1881", ("gateway_rejected", "fraud", "Gateway Rejected: fraud")
    ),
    "fake-consumed-nonce": TestNonce(
        "Visa", "1881", validation_error=("91564", "Cannot use a payment_method_nonce more than once.")
    ),
    "fake-luhn-invalid-nonce": TestNonce("Visa", "1881", validation_error=("81715", "Credit card number is invalid.")),
}

# Processor response texts of Braintree's 2000-2999 range (the rest read "Processor Declined").
PROCESSOR_DECLINES: dict[int, str] = {
    2000: "Do Not Honor",
    2001: "Insufficient Funds",
    2002: "Limit Exceeded",
    2003: "Cardholder's Activity Limit Exceeded",
    2004: "Expired Card",
    2005: "Invalid Credit Card Number",
    2006: "Invalid Expiration Date",
    2007: "No Account",
    2008: "Card Account Length Error",
    2009: "No Such Issuer",
    2010: "Card Issuer Declined CVV",
    2011: "Voice Authorization Required",
    2012: "Processor Declined - Possible Lost Card",
    2013: "Processor Declined - Possible Stolen Card",
    2014: "Processor Declined - Fraud Suspected",
    2015: "Transaction Not Allowed",
    2016: "Duplicate Transaction",
    2017: "Cardholder Stopped Billing",
    2018: "Cardholder Stopped All Billing",
    2019: "Invalid Transaction",
    2020: "Violation",
    2021: "Security Violation",
    2022: "Declined - Updated Cardholder Available",
    2023: "Processor Does Not Support This Feature",
    2024: "Card Type Not Enabled",
    2038: "Processor Declined",
    2044: "Declined - Call Issuer",
    2046: "Declined",
    2047: "Call Issuer. Pick Up Card",
    2053: "Card reported as lost or stolen",
    2057: "Issuer or Cardholder has put a restriction on the card",
    2059: "Address Verification Failed",
}
HARD_DECLINES = frozenset({2004, 2005, 2007, 2008, 2009, 2012, 2013, 2014, 2017, 2018, 2047, 2053, 2057})
SETTLEMENT_DECLINED_AMOUNT = Decimal("4001.00")
TERMINAL_DISPUTE_STATUSES = frozenset({"won", "lost", "accepted", "expired", "auto_accepted"})
DISPUTE_UPDATE_STATUSES = frozenset({"under_review", "disputed", *TERMINAL_DISPUTE_STATUSES})


class BraintreeNotFound(LookupError):
    """Answered as 404, which the SDK raises as NotFoundError."""


class BraintreeControlError(ValueError):
    """A control-API request that cannot apply (answered 400 with the message)."""


@dataclass
class Transaction:
    id: str
    transaction_type: str
    amount: Decimal
    currency_iso_code: str
    merchant_account_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    card_type: str
    last_4: str
    order_id: str | None = None
    customer_email: str | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)
    processor_response_code: str = "1000"
    processor_response_text: str = "Approved"
    gateway_rejection_reason: str | None = None
    refunded_transaction_id: str | None = None
    refund_ids: list[str] = field(default_factory=list)
    status_history: list[tuple[str, datetime]] = field(default_factory=list)
    disbursement_date: date | None = None
    subscription_id: str | None = None
    fails_later: bool = False  # a refund that the processor declines after accepting it

    def set_status(self, status: str, at: datetime) -> None:
        self.status = status
        self.updated_at = at
        self.status_history.append((status, at))

    def xml(self) -> str:
        return transaction_xml(
            transaction_id=self.id,
            amount=self.amount,
            currency_iso_code=self.currency_iso_code,
            status=self.status,
            transaction_type=self.transaction_type,
            processor_response_code=self.processor_response_code,
            processor_response_text=self.processor_response_text,
            processor_response_type=_response_type(self.processor_response_code),
            created_at=self.created_at,
            updated_at=self.updated_at,
            customer_email=self.customer_email,
            card_last_4=self.last_4,
            card_type=self.card_type,
            order_id=self.order_id,
            custom_fields=self.custom_fields or None,
            disbursement_date=self.disbursement_date,
            settlement_amount=self.amount if self.disbursement_date else None,
            refunded_transaction_id=self.refunded_transaction_id,
            refund_ids=self.refund_ids,
            subscription_id=self.subscription_id,
            merchant_account_id=self.merchant_account_id,
            gateway_rejection_reason=self.gateway_rejection_reason,
            status_history=self.status_history,
        )


@dataclass
class Subscription:
    """A recurring billing agreement, charged on demand through the control API or ``retry_charge``."""

    id: str
    plan_id: str
    price: Decimal
    nonce: TestNonce
    merchant_account_id: str
    currency_iso_code: str
    status: str = "Active"
    failure_count: int = 0
    balance: Decimal = Decimal(0)
    transaction_ids: list[str] = field(default_factory=list)


@dataclass
class Dispute:
    id: str
    transaction: Transaction
    amount_disputed: Decimal
    reason: str
    kind: str
    status: str
    received_date: date
    reply_by_date: date
    created_at: datetime
    updated_at: datetime
    status_history: list[tuple[str, datetime]] = field(default_factory=list)

    def xml(self) -> str:
        return dispute_xml(
            dispute_id=self.id,
            amount_disputed=self.amount_disputed,
            amount_won=self.amount_disputed if self.status == "won" else Decimal(0),
            transaction_id=self.transaction.id,
            transaction_amount=self.transaction.amount,
            transaction_created_at=self.transaction.created_at,
            order_id=self.transaction.order_id,
            currency_iso_code=self.transaction.currency_iso_code,
            kind=self.kind,
            reason=self.reason,
            status=self.status,
            reply_by_date=self.reply_by_date,
            received_date=self.received_date,
            created_at=self.created_at,
            updated_at=self.updated_at,
            case_number=f"CASE-{self.id.upper()}",
            merchant_account_id=self.transaction.merchant_account_id,
            status_history=self.status_history,
        )


def _response_type(code: str) -> str:
    if code.startswith("1"):
        return "approved"
    if code.isdigit() and int(code) in HARD_DECLINES:
        return "hard_declined"
    return "soft_declined"


def braintree_id(length: int = 8) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def parse_request_xml(body: bytes) -> dict[str, Any]:
    """Braintree request XML to a dict (dashes as underscores; typed booleans, integers, arrays)."""
    if not body.strip():
        return {}
    # The body comes from the local SDK; expat >= 2.4 bounds entity expansion and ElementTree
    # resolves no external entities, so parsing it with the standard library is safe here.
    root = ElementTree.fromstring(body)  # noqa: S314
    return {root.tag.replace("-", "_"): _node(root, 0)}


def _node(element: ElementTree.Element, depth: int) -> Any:
    if depth > MAX_BODY_DEPTH:
        raise ValueError("request XML is nested too deeply")
    kind = element.get("type")
    if element.get("nil") == "true":
        return None
    if kind == "array":
        return [_node(child, depth + 1) for child in element]
    children = list(element)
    if children:
        return {child.tag.replace("-", "_"): _node(child, depth + 1) for child in children}
    text = (element.text or "").strip()
    if kind == "boolean":
        return text in {"true", "1"}
    if kind == "integer":
        return int(text)
    return text


def _error_response(code: str, attribute: str, message: str, *, scope: tuple[str, ...] = ("transaction",)) -> str:
    error = (
        '<errors type="array"><error>'
        f'<code>{code}</code><attribute type="symbol">{escape(attribute)}</attribute>'
        f"<message>{escape(message)}</message></error></errors>"
    )
    for name in reversed(scope):
        error = f"<{name}>{error}</{name}>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?><api-error-response>'
        f'<errors><errors type="array"/>{error}</errors>'
        f"<message>{escape(message)}</message></api-error-response>"
    )


def _declined_response(transaction: Transaction) -> str:
    message = (
        f"Gateway Rejected: {transaction.gateway_rejection_reason}"
        if transaction.status == "gateway_rejected"
        else transaction.processor_response_text
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><api-error-response>'
        '<errors><errors type="array"/></errors>'
        f"<message>{escape(message)}</message>{transaction.xml()}</api-error-response>"
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ok(xml: str, status: int = 200) -> tuple[int, str]:
    return status, '<?xml version="1.0" encoding="UTF-8"?>' + xml


def _amount(value: Any, *, attribute: str = "amount") -> Decimal | tuple[int, str]:
    """A positive amount with at most two decimals, or the 422 answer Braintree gives."""
    if value is None or value == "":
        return 422, _error_response("81502", attribute, "Amount is required.")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return 422, _error_response("81503", attribute, "Amount is an invalid format.")
    if not amount.is_finite() or amount != amount.quantize(CENT):
        return 422, _error_response("81503", attribute, "Amount is an invalid format.")
    if amount < 0:
        return 422, _error_response("81501", attribute, "Amount cannot be negative.")
    if amount == 0:
        return 422, _error_response("81531", attribute, "Amount must be greater than zero.")
    if amount > MAX_AMOUNT:
        return 422, _error_response("81528", attribute, "Amount is too large.")
    return amount.quantize(CENT)


class BraintreeSandbox:
    """In-memory Braintree merchant: transactions and disputes by id, and its webhook stream."""

    def __init__(
        self,
        *,
        merchant_id: str,
        dispatcher: WebhookDispatcher,
        scheduler: Scheduler,
        lifecycle_delay: Callable[[], float],
        lock: threading.RLock,
    ) -> None:
        self.merchant_id = merchant_id
        self.dispatcher = dispatcher
        self.scheduler = scheduler
        self.lifecycle_delay = lifecycle_delay
        self.lock = lock
        self.transactions: BoundedStore[str, Transaction] = BoundedStore(
            MAX_TRANSACTIONS, lambda transaction_id, _: self.disbursed.discard(transaction_id)
        )
        self.disputes: BoundedStore[str, Dispute] = BoundedStore(MAX_DISPUTES)
        self.subscriptions: dict[str, Subscription] = {}
        self.disbursed: set[str] = set()

    def reset(self) -> None:
        with self.lock:
            self.subscriptions.clear()
            self.transactions.clear()
            self.disputes.clear()
            self.disbursed.clear()

    # ------------------------------------------------------------------ helpers
    def _notify(self, kind: str, subject: str, object_id: str, *, extra_duplicates: int = 0) -> None:
        timestamp = datetime.now(UTC)
        xml = braintree_notification_xml(kind, subject, timestamp=timestamp)
        notification_id = f"btn_{braintree_id(12)}"
        self.dispatcher.send_braintree_notification(
            notification_id, kind, xml, object_id=object_id, extra_duplicates=extra_duplicates
        )

    def _later(self, callback: Callable[[], None]) -> None:
        def locked() -> None:
            with self.lock:
                callback()

        self.scheduler.call_later(self.lifecycle_delay(), locked)

    def _find(self, transaction_id: str) -> Transaction:
        transaction = self.transactions.get(transaction_id)
        if transaction is None:
            raise BraintreeNotFound(transaction_id)
        return transaction

    def _currency(self, merchant_account_id: str | None) -> str:
        """A merchant account named like ``..._eur`` settles in EUR; the default one in USD."""
        if merchant_account_id and len(merchant_account_id) > 3 and merchant_account_id[-4] in "_-":
            suffix = merchant_account_id[-3:]
            if suffix.isalpha():
                return suffix.upper()
        return "USD"

    # ------------------------------------------------------------------ API
    def create_transaction(self, body: dict[str, Any]) -> tuple[int, str]:
        params = body.get("transaction")
        if not isinstance(params, dict):
            return 422, _error_response("91524", "type", "Transaction type is required.")
        if params.get("type") != "sale":
            return 422, _error_response("91523", "type", "Transaction type is invalid (the sandbox makes sales only).")
        if isinstance(params.get("credit_card"), dict) and (
            params["credit_card"].get("number") or params["credit_card"].get("cvv")
        ):
            # Never accept (or keep) a card number: the app must tokenize with a nonce, as in production.
            return 422, _error_response(
                "91508",
                "base",
                "The sandbox accepts payment method nonces only (such as fake-valid-nonce), never card numbers.",
            )
        if params.get("subscription_id"):
            return self._retry_charge(params)
        amount = _amount(params.get("amount"))
        if isinstance(amount, tuple):
            return amount
        nonce_value = params.get("payment_method_nonce")
        if not nonce_value:
            if params.get("payment_method_token"):
                return 422, _error_response("91518", "payment_method_token", "Payment method token is invalid.")
            return 422, _error_response("91508", "base", "Cannot determine payment method.")
        nonce = TEST_NONCES.get(str(nonce_value))
        if nonce is None:
            return 422, _error_response("91565", "payment_method_nonce", "Unknown or expired payment_method_nonce.")
        if nonce.validation_error:
            code, message = nonce.validation_error
            return 422, _error_response(code, "payment_method_nonce", message)
        custom_fields = params.get("custom_fields") or {}
        if not isinstance(custom_fields, dict):
            return 422, _error_response("91526", "custom_fields", "Custom field is invalid.")
        customer = _mapping(params.get("customer"))
        options = _mapping(params.get("options"))
        merchant_account_id = str(params.get("merchant_account_id") or self.merchant_id)
        now = datetime.now(UTC)
        with self.lock:
            transaction = Transaction(
                id=braintree_id(),
                transaction_type="sale",
                amount=amount,
                currency_iso_code=self._currency(params.get("merchant_account_id")),
                merchant_account_id=merchant_account_id,
                status="authorizing",
                created_at=now,
                updated_at=now,
                card_type=nonce.card_type,
                last_4=nonce.last_4,
                order_id=params.get("order_id") or None,
                customer_email=customer.get("email") or None,
                custom_fields={str(key): str(value) for key, value in custom_fields.items()},
            )
            self.transactions[transaction.id] = transaction
            outcome = nonce.outcome or self._amount_outcome(amount)
            if outcome is not None:
                status, code, text = outcome
                if status == "gateway_rejected":
                    transaction.gateway_rejection_reason = code
                    transaction.processor_response_code, transaction.processor_response_text = "", ""
                else:
                    transaction.processor_response_code, transaction.processor_response_text = code, text
                transaction.set_status(status, now)
                return 422, _declined_response(transaction)
            transaction.set_status("authorized", now)
            if options.get("submit_for_settlement") is True:
                self._submit(transaction, now)
            return _ok(transaction.xml(), 201)

    def _retry_charge(self, params: dict[str, Any]) -> tuple[int, str]:
        """``gateway.subscription.retry_charge(...)``: charge a subscription's stored card again."""
        with self.lock:
            subscription = self.subscriptions.get(str(params["subscription_id"]))
            if subscription is None:
                return 422, _error_response("91903", "subscription_id", "Subscription ID is invalid.")
            amount: Decimal = subscription.balance or subscription.price
            if params.get("amount") not in (None, ""):
                parsed = _amount(params["amount"])
                if isinstance(parsed, tuple):
                    return parsed
                amount = parsed
            submit = _mapping(params.get("options")).get("submit_for_settlement") is True
            transaction = self._charge_subscription(subscription, amount, submit=submit)
            if transaction.status in {"processor_declined", "failed", "gateway_rejected"}:
                return 422, _declined_response(transaction)
            return _ok(transaction.xml(), 201)

    def create_subscription(
        self, *, price: str, plan_id: str, nonce: str, merchant_account_id: str | None
    ) -> Subscription:
        parsed = _amount(price)
        if isinstance(parsed, tuple):
            raise BraintreeControlError("price must be a positive decimal amount such as '9.99'.")
        behaviour = TEST_NONCES.get(nonce)
        if behaviour is None or behaviour.validation_error:
            raise BraintreeControlError(
                f"payment_method_nonce must be a usable test nonce, one of {sorted(TEST_NONCES)}."
            )
        with self.lock:
            subscription = Subscription(
                id=braintree_id(6),
                plan_id=plan_id,
                price=parsed,
                nonce=behaviour,
                merchant_account_id=merchant_account_id or self.merchant_id,
                currency_iso_code=self._currency(merchant_account_id),
            )
            self.subscriptions[subscription.id] = subscription
            return subscription

    def charge_subscription(self, subscription_id: str, amount: str | None) -> Transaction:
        with self.lock:
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None:
                raise BraintreeNotFound(subscription_id)
            charged: Decimal = subscription.price
            if amount is not None:
                parsed = _amount(amount)
                if isinstance(parsed, tuple):
                    raise BraintreeControlError("amount must be a positive decimal amount such as '9.99'.")
                charged = parsed
            return self._charge_subscription(subscription, charged, submit=True)

    def _charge_subscription(self, subscription: Subscription, amount: Decimal, *, submit: bool) -> Transaction:
        now = datetime.now(UTC)
        transaction = Transaction(
            id=braintree_id(),
            transaction_type="sale",
            amount=amount,
            currency_iso_code=subscription.currency_iso_code,
            merchant_account_id=subscription.merchant_account_id,
            status="authorizing",
            created_at=now,
            updated_at=now,
            card_type=subscription.nonce.card_type,
            last_4=subscription.nonce.last_4,
            subscription_id=subscription.id,
        )
        self.transactions[transaction.id] = transaction
        subscription.transaction_ids.insert(0, transaction.id)
        outcome = subscription.nonce.outcome or self._amount_outcome(amount)
        if outcome is None:
            transaction.set_status("authorized", now)
            if submit:
                self._submit(transaction, now)
            subscription.status, subscription.failure_count, subscription.balance = "Active", 0, Decimal(0)
            self._notify("subscription_charged_successfully", self._subscription_xml(subscription), subscription.id)
            return transaction
        status, code, text = outcome
        transaction.processor_response_code, transaction.processor_response_text = code, text
        transaction.set_status(status if status != "gateway_rejected" else "processor_declined", now)
        was_active = subscription.status == "Active"
        subscription.failure_count += 1
        subscription.balance = amount
        subscription.status = "Past Due"
        self._notify("subscription_charged_unsuccessfully", self._subscription_xml(subscription), subscription.id)
        if was_active:
            self._notify("subscription_went_past_due", self._subscription_xml(subscription), subscription.id)
        return transaction

    def _subscription_xml(self, subscription: Subscription) -> str:
        return subscription_xml(
            subscription_id=subscription.id,
            status=subscription.status,
            plan_id=subscription.plan_id,
            price=subscription.price,
            balance=subscription.balance,
            failure_count=subscription.failure_count,
            transactions=[
                self.transactions[transaction_id].xml() for transaction_id in subscription.transaction_ids[:10]
            ],
        )

    def send_check(self) -> None:
        """Braintree's "check" notification, which the control panel sends to test an endpoint."""
        self._notify("check", check_xml(), "check")

    @staticmethod
    def _amount_outcome(amount: Decimal) -> tuple[str, str, str] | None:
        if Decimal(2000) <= amount < Decimal(3000):
            code = int(amount)
            return "processor_declined", str(code), PROCESSOR_DECLINES.get(code, "Processor Declined")
        if Decimal(3000) <= amount < Decimal(3001):
            return "failed", "3000", "Processor Network Unavailable - Try Again"
        return None

    def _submit(self, transaction: Transaction, at: datetime) -> None:
        transaction.set_status("submitted_for_settlement", at)
        transaction_id = transaction.id
        self._later(lambda: self._settle(transaction_id))

    def _settle(self, transaction_id: str) -> None:
        transaction = self.transactions[transaction_id]
        if transaction.status != "submitted_for_settlement":
            return  # voided or failed meanwhile
        now = datetime.now(UTC)
        if transaction.fails_later:
            self._fail_refund(transaction)
            return
        transaction.set_status("settling", now)
        if transaction.transaction_type == "sale" and transaction.amount == SETTLEMENT_DECLINED_AMOUNT:
            transaction.processor_response_code = "4001"
            transaction.processor_response_text = "Settlement Declined"
            transaction.set_status("settlement_declined", now)
            self._notify("transaction_settlement_declined", transaction.xml(), transaction.id)
            return
        transaction.set_status("settled", now)
        self._notify("transaction_settled", transaction.xml(), transaction.id)

    def settle_now(self, transaction_id: str) -> Transaction:
        """Settle a transaction submitted for settlement at once, as the scheduled step would later
        (which then finds it settled and does nothing): for tests that need a sale to settle between
        two requests, e.g. after a status check and before a void."""
        with self.lock:
            transaction = self._find(transaction_id)
            if transaction.status != "submitted_for_settlement":
                raise BraintreeControlError(
                    f"Transaction {transaction_id} is {transaction.status}; only one submitted for settlement settles."
                )
            self._settle(transaction_id)
            return transaction

    def find_transaction(self, transaction_id: str) -> tuple[int, str]:
        with self.lock:
            return _ok(self._find(transaction_id).xml())

    def submit_for_settlement(self, transaction_id: str, body: dict[str, Any]) -> tuple[int, str]:
        params = _mapping(body.get("transaction"))
        with self.lock:
            transaction = self._find(transaction_id)
            if transaction.status != "authorized":
                return 422, _error_response(
                    "91507", "base", "Cannot submit for settlement unless status is authorized."
                )
            if params.get("amount") not in (None, ""):
                amount = _amount(params["amount"])
                if isinstance(amount, tuple):
                    return amount
                if amount > transaction.amount:
                    return 422, _error_response(
                        "91522", "amount", "Settlement amount cannot be more than the authorized amount."
                    )
                transaction.amount = amount
            if params.get("order_id"):
                transaction.order_id = str(params["order_id"])
            self._submit(transaction, datetime.now(UTC))
            return _ok(transaction.xml())

    def void(self, transaction_id: str) -> tuple[int, str]:
        with self.lock:
            transaction = self._find(transaction_id)
            if transaction.status not in {"authorized", "submitted_for_settlement"}:
                return 422, _error_response(
                    "91504",
                    "base",
                    "Transaction can only be voided if status is authorized, submitted_for_settlement, or - for "
                    "PayPal - settlement_pending.",
                )
            transaction.set_status("voided", datetime.now(UTC))
            return _ok(transaction.xml())

    def refund(self, transaction_id: str, body: dict[str, Any]) -> tuple[int, str]:
        params = _mapping(body.get("transaction"))
        with self.lock:
            original = self._find(transaction_id)
            if original.transaction_type == "credit":
                return 422, _error_response("91505", "base", "Cannot refund credit.")
            if original.status == "settling":
                return 422, _error_response(
                    "91574", "base", "Cannot refund a transaction in settling status on this merchant account."
                )
            if original.status != "settled":
                return 422, _error_response("91506", "base", "Cannot refund transaction unless it is settled.")
            if any(dispute.transaction is original for dispute in self.disputes.values()):
                return 422, _error_response("91506", "base", "Cannot refund a transaction with an open dispute.")
            remaining = original.amount - sum(
                (
                    self.transactions[refund_id].amount
                    for refund_id in original.refund_ids
                    if self.transactions[refund_id].status != "processor_declined"
                ),
                Decimal(0),
            )
            if remaining <= 0:
                return 422, _error_response("91512", "base", "Transaction has already been fully refunded.")
            if params.get("amount") in (None, ""):
                amount: Decimal = remaining
            else:
                parsed = _amount(params["amount"])
                if isinstance(parsed, tuple):
                    return parsed
                amount = parsed
            if amount > remaining:
                return 422, _error_response("91521", "amount", "Refund amount is too large.")
            now = datetime.now(UTC)
            credit = Transaction(
                id=braintree_id(),
                transaction_type="credit",
                amount=amount,
                currency_iso_code=original.currency_iso_code,
                merchant_account_id=original.merchant_account_id,
                status="authorized",
                created_at=now,
                updated_at=now,
                card_type=original.card_type,
                last_4=original.last_4,
                order_id=str(params.get("order_id") or original.order_id or "") or None,
                customer_email=original.customer_email,
                custom_fields=dict(original.custom_fields),
                refunded_transaction_id=original.id,
                fails_later=self._amount_outcome(amount) is not None,
            )
            self.transactions[credit.id] = credit
            original.refund_ids.append(credit.id)
            original.updated_at = now
            self._submit(credit, now)
            return _ok(credit.xml(), 201)

    def fail_refund(self, refund_id: str) -> Transaction:
        with self.lock:
            credit = self._find(refund_id)
            if credit.transaction_type != "credit" or credit.status in {"processor_declined", "voided"}:
                raise BraintreeControlError(f"Transaction {refund_id} is not a refund that can still fail.")
            self._fail_refund(credit)
            return credit

    def _fail_refund(self, credit: Transaction) -> None:
        code = self._amount_outcome(credit.amount)
        credit.processor_response_code, credit.processor_response_text = (
            (code[1], code[2]) if code and code[0] == "processor_declined" else ("2046", "Declined")
        )
        credit.set_status("processor_declined", datetime.now(UTC))
        self._notify("refund_failed", credit.xml(), credit.id)

    # ------------------------------------------------------------------ disputes
    def open_dispute(self, transaction_id: str, *, amount: str | None, reason: str, kind: str) -> Dispute:
        with self.lock:
            transaction = self.transactions.get(transaction_id)
            if transaction is None:
                raise BraintreeControlError(f"No Braintree transaction {transaction_id!r}.")
            if transaction.transaction_type != "sale" or transaction.status not in {"settled", "settling"}:
                raise BraintreeControlError(
                    f"Transaction {transaction_id} is {transaction.status}; only settled sales can be disputed."
                )
            if any(dispute.transaction is transaction for dispute in self.disputes.values()):
                raise BraintreeControlError(f"Transaction {transaction_id} is already disputed.")
            disputed = transaction.amount
            if amount is not None:
                parsed = _amount(amount)
                if isinstance(parsed, tuple) or parsed > transaction.amount:
                    raise BraintreeControlError(f"amount must be a decimal from 0.01 to {transaction.amount}.")
                disputed = parsed
            now = datetime.now(UTC)
            dispute = Dispute(
                id=braintree_id(16),
                transaction=transaction,
                amount_disputed=disputed,
                reason=reason,
                kind=kind,
                status="open",
                received_date=now.date(),
                reply_by_date=now.date() + timedelta(days=10),
                created_at=now,
                updated_at=now,
                status_history=[("open", now)],
            )
            self.disputes[dispute.id] = dispute
            self._notify("dispute_opened", dispute.xml(), dispute.id)
            return dispute

    def update_dispute(self, dispute_id: str, status: str) -> Dispute:
        with self.lock:
            dispute = self.disputes.get(dispute_id)
            if dispute is None:
                raise BraintreeNotFound(dispute_id)
            if dispute.status in TERMINAL_DISPUTE_STATUSES:
                raise BraintreeControlError(f"Dispute {dispute_id} is already closed ({dispute.status}).")
            if status not in DISPUTE_UPDATE_STATUSES:
                raise BraintreeControlError(
                    f"status must be one of {sorted(DISPUTE_UPDATE_STATUSES)} for a Braintree dispute."
                )
            now = datetime.now(UTC)
            dispute.status = status
            dispute.updated_at = now
            dispute.status_history.append((status, now))
            self._notify(f"dispute_{status}", dispute.xml(), dispute.id)
            return dispute

    def find_dispute(self, dispute_id: str) -> tuple[int, str]:
        with self.lock:
            dispute = self.disputes.get(dispute_id)
            if dispute is None:
                raise BraintreeNotFound(dispute_id)
            return _ok(dispute.xml())

    def accept_dispute(self, dispute_id: str) -> tuple[int, str]:
        return self._close_open_dispute(dispute_id, "accepted", code="95701", verb="accepted")

    def finalize_dispute(self, dispute_id: str) -> tuple[int, str]:
        return self._close_open_dispute(dispute_id, "disputed", code="95703", verb="finalized")

    def _close_open_dispute(self, dispute_id: str, status: str, *, code: str, verb: str) -> tuple[int, str]:
        """Accept or finalize: only an open dispute, else Braintree's validation error ``code``."""
        with self.lock:
            dispute = self.disputes.get(dispute_id)
            if dispute is None:
                raise BraintreeNotFound(dispute_id)
            if dispute.status != "open":
                return 422, _error_response(
                    code, "status", f"Disputes can only be {verb} when they are in an Open state", scope=("dispute",)
                )
        self.update_dispute(dispute_id, status)
        return 200, ""

    # ------------------------------------------------------------------ disbursements
    def disburse(self, *, currency: str | None) -> tuple[str, Decimal, list[str]]:
        """Pay out every settled, not yet disbursed transaction, net of Braintree's fees."""
        with self.lock:
            wanted = (currency or "USD").upper()
            included = [
                transaction
                for transaction in self.transactions.values()
                if transaction.status == "settled"
                and transaction.currency_iso_code == wanted
                and transaction.id not in self.disbursed
            ]
            if not included:
                raise BraintreeControlError(
                    f"Nothing to disburse: no settled {wanted} transactions since the last one."
                )
            total = Decimal(0)
            for transaction in included:
                if transaction.transaction_type == "sale":
                    fee = (transaction.amount * FEE_BASIS_POINTS / 10_000 + FEE_FIXED).quantize(CENT, ROUND_HALF_UP)
                    total += transaction.amount - fee
                else:
                    total -= transaction.amount
            today = datetime.now(UTC).date()
            for transaction in included:
                transaction.disbursement_date = today
                self.disbursed.add(transaction.id)
            disbursement_id = braintree_id(12)
            subject = disbursement_xml(
                disbursement_id=disbursement_id,
                amount=abs(total),
                disbursement_date=today,
                transaction_ids=[transaction.id for transaction in included],
                currency_iso_code=wanted,
                merchant_account_id=included[0].merchant_account_id,
                disbursement_type="credit" if total >= 0 else "debit",
            )
            self._notify("disbursement", subject, disbursement_id)
            return disbursement_id, total, [transaction.id for transaction in included]
