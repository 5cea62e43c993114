"""The Stripe half of the stand-in: payment intents, charges, refunds, disputes, payouts, fees.

State lives in memory (a development tool: a restart forgets everything). Behaviour follows
Stripe's test mode: the magic test payment methods (``pm_card_visa``,
``pm_card_chargeDeclinedInsufficientFunds``, ``pm_card_threeDSecure2Required``,
``pm_card_createDispute``...) decide each payment's fate, errors carry Stripe's types and
decline codes, POSTs honour ``Idempotency-Key``, and every state change emits the event Stripe
would send, with the caller's ``metadata`` carried on the objects.

Callers hold :attr:`StripeSandbox.lock` for nothing: every public method takes it itself.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.bounded import BoundedStore
from sandbox.delivery import Scheduler, WebhookDispatcher
from sandbox.stripe_events import stripe_event, stripe_id, stripe_object

JSON = dict[str, Any]

# Stripe's fee for a card charge in this sandbox: 2.9% + 30 minor units (rounded half up).
CHARGE_FEE_BASIS_POINTS = 290
CHARGE_FEE_FIXED = 30
# Dispute fee withdrawn with the disputed amount (Stripe charges 15.00 in USD).
DISPUTE_FEE = 1500
# Payout fee: 0.25% + 25 minor units (Stripe's price for payouts of connected accounts).
PAYOUT_FEE_BASIS_POINTS = 25
PAYOUT_FEE_FIXED = 25
MAX_AMOUNT = 99_999_999
# In-memory limits (oldest forgotten first): about 2,500 payments with their charges and fees,
# the latest events (Stripe keeps 30 days; a demo needs minutes) and idempotency records.
MAX_OBJECTS = 10_000
MAX_EVENTS = 2_000
MAX_IDEMPOTENCY_KEYS = 10_000
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50, "sek": 300}
DOC_URL = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error answered in Stripe's shape: ``{"error": {"type", "code", "message", ...}}``."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.decline_code = decline_code
        self.param = param
        self.extra = extra or {}

    def body(self) -> JSON:
        error: JSON = {"type": self.error_type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    return StripeError(status, "invalid_request_error", message, param=param, code=code)


@dataclass(frozen=True)
class TestPaymentMethod:
    """What one of Stripe's magic test payment methods does."""

    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    decline: tuple[str, str, str] | None = None  # (code, decline_code, message)
    three_d_secure: bool = False
    dispute: bool = False
    refund_fails: bool = False
    bank_debit: str | None = None  # "success" | "failure": ACH Direct Debit, processed later


_DECLINED = "Your card was declined."
TEST_PAYMENT_METHODS: dict[str, TestPaymentMethod] = {
    "pm_card_visa": TestPaymentMethod("visa", "4242"),
    "pm_card_visa_debit": TestPaymentMethod("visa", "5556", funding="debit"),
    "pm_card_mastercard": TestPaymentMethod("mastercard", "4444"),
    "pm_card_amex": TestPaymentMethod("amex", "8431"),
    "pm_card_discover": TestPaymentMethod("discover", "1117"),
    "pm_card_gb": TestPaymentMethod("visa", "0002", country="GB"),
    "pm_card_chargeDeclined": TestPaymentMethod(
        "visa", "0002", decline=("card_declined", "generic_decline", _DECLINED)
    ),
    "pm_card_chargeDeclinedInsufficientFunds": TestPaymentMethod(
        "visa", "9995", decline=("card_declined", "insufficient_funds", "Your card has insufficient funds.")
    ),
    "pm_card_chargeDeclinedLostCard": TestPaymentMethod(
        "visa", "9987", decline=("card_declined", "lost_card", _DECLINED)
    ),
    "pm_card_chargeDeclinedStolenCard": TestPaymentMethod(
        "visa", "9979", decline=("card_declined", "stolen_card", _DECLINED)
    ),
    "pm_card_chargeDeclinedFraudulent": TestPaymentMethod(
        "visa", "0019", decline=("card_declined", "fraudulent", _DECLINED)
    ),
    "pm_card_chargeDeclinedExpiredCard": TestPaymentMethod(
        "visa", "0069", decline=("expired_card", "expired_card", "Your card has expired.")
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestPaymentMethod(
        "visa", "0127", decline=("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")
    ),
    "pm_card_chargeDeclinedProcessingError": TestPaymentMethod(
        "visa",
        "0119",
        decline=(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ),
    "pm_card_threeDSecure2Required": TestPaymentMethod("visa", "3220", three_d_secure=True),
    "pm_card_authenticationRequired": TestPaymentMethod("visa", "3184", three_d_secure=True),
    "pm_card_createDispute": TestPaymentMethod("visa", "0259", dispute=True),
    "pm_card_refundFail": TestPaymentMethod("visa", "5126", refund_fails=True),
    "pm_usBankAccount_success": TestPaymentMethod("us_bank_account", "6789", bank_debit="success"),
    "pm_usBankAccount_failure": TestPaymentMethod("us_bank_account", "1116", bank_debit="failure"),
}
_AUTHENTICATION_REQUIRED = (
    "card_declined",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
_BANK_DEBIT_FAILURE = ("insufficient_funds", "insufficient_funds", "The customer's account has insufficient funds.")

PAYMENT_INTENT_CREATE_PARAMS = frozenset(
    {
        "amount", "amount_details", "application_fee_amount", "automatic_payment_methods", "capture_method",
        "confirm", "confirmation_method", "confirmation_token", "customer", "description",
        "error_on_requires_action", "excluded_payment_method_types", "expand", "hooks", "mandate_data", "metadata",
        "off_session", "on_behalf_of", "payment_details", "payment_method", "payment_method_configuration",
        "payment_method_data", "payment_method_options", "payment_method_types", "radar_options", "receipt_email",
        "return_url", "setup_future_usage", "shipping", "statement_descriptor", "statement_descriptor_suffix",
        "transfer_data", "transfer_group", "use_stripe_sdk", "currency",
    }
)  # fmt: skip
PAYMENT_INTENT_UPDATE_PARAMS = frozenset(
    {
        "amount", "capture_method", "currency", "customer", "description", "expand", "metadata", "payment_method",
        "payment_method_options", "payment_method_types", "receipt_email", "setup_future_usage", "shipping",
        "statement_descriptor", "statement_descriptor_suffix", "transfer_group",
    }
)  # fmt: skip
PAYMENT_INTENT_CONFIRM_PARAMS = frozenset(
    {
        "capture_method", "confirmation_token", "error_on_requires_action", "expand", "mandate_data", "off_session",
        "payment_method", "payment_method_data", "payment_method_options", "payment_method_types", "radar_options",
        "receipt_email", "return_url", "setup_future_usage", "shipping", "use_stripe_sdk",
    }
)  # fmt: skip
PAYMENT_INTENT_CAPTURE_PARAMS = frozenset(
    {
        "amount_to_capture", "application_fee_amount", "expand", "final_capture", "metadata",
        "statement_descriptor", "statement_descriptor_suffix", "transfer_data",
    }
)  # fmt: skip
PAYMENT_INTENT_CANCEL_PARAMS = frozenset({"cancellation_reason", "expand"})
REFUND_CREATE_PARAMS = frozenset(
    {
        "amount", "charge", "currency", "customer", "expand", "instructions_email", "metadata", "origin",
        "payment_intent", "reason", "refund_application_fee", "reverse_transfer",
    }
)  # fmt: skip
RETRIEVE_PARAMS = frozenset({"expand"})
LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "created", "expand"})
LIST_FILTERS: dict[str, frozenset[str]] = {
    "payment_intent": frozenset({"customer"}),
    "charge": frozenset({"customer", "payment_intent"}),
    "refund": frozenset({"charge", "payment_intent"}),
    "dispute": frozenset({"charge", "payment_intent"}),
    "payout": frozenset({"status", "arrival_date", "destination"}),
    "balance_transaction": frozenset({"payout", "source", "type", "currency"}),
    "event": frozenset({"type", "types", "delivery_success"}),
}
ID_PREFIXES = {
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "dp": "dispute",
    "po": "payout",
    "txn": "balance_transaction",
    "pm": "payment_method",
    "evt": "event",
}
RESOURCE_PATHS = {
    "payment_intents": "payment_intent",
    "charges": "charge",
    "refunds": "refund",
    "disputes": "dispute",
    "payouts": "payout",
    "balance_transactions": "balance_transaction",
    "payment_methods": "payment_method",
    "events": "event",
}
_CURRENCY = re.compile(r"^[a-z]{3}$")


@dataclass
class RequestContext:
    """Who asked: the request id and idempotency key Stripe puts on the events a request causes."""

    request_id: str | None = None
    idempotency_key: str | None = None
    extra_duplicates: int = 0


def _now() -> int:
    return int(time.time())


def _fee(amount: int, basis_points: int, fixed: int) -> int:
    return (amount * basis_points + 5_000) // 10_000 + fixed


def charge_fee(amount: int) -> int:
    """Stripe's processing fee for a captured charge of ``amount`` minor units."""
    return _fee(amount, CHARGE_FEE_BASIS_POINTS, CHARGE_FEE_FIXED)


def payout_fee(amount: int) -> int:
    return _fee(amount, PAYOUT_FEE_BASIS_POINTS, PAYOUT_FEE_FIXED)


def _reject_card_numbers(params: Any, path: str = "") -> None:
    """Refuse raw card data anywhere in a request, without echoing or keeping it (PCI DSS)."""
    if isinstance(params, dict):
        for key, value in params.items():
            if key in {"number", "cvc", "cvv", "exp_month", "exp_year"}:
                raise invalid_request(
                    "Sending credit card numbers directly to the Stripe API is generally unsafe, and this sandbox "
                    "refuses them. Use a test payment method id such as 'pm_card_visa' "
                    "(see https://stripe.com/docs/testing).",
                    param=f"{path}[{key}]" if path else key,
                )
            _reject_card_numbers(value, f"{path}[{key}]" if path else key)
    elif isinstance(params, list):
        for index, value in enumerate(params):
            _reject_card_numbers(value, f"{path}[{index}]")


def _check_params(params: JSON, allowed: frozenset[str]) -> None:
    _reject_card_numbers(params)
    for key in params:
        if key not in allowed:
            raise invalid_request(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def _integer(params: JSON, name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid_request(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise invalid_request(f"Invalid integer: {value}", param=name, code="parameter_invalid_integer") from None
    if number < 0:
        raise invalid_request(
            f"This value must be greater than or equal to 0 ({name}).", param=name, code="parameter_invalid_integer"
        )
    return number


def _boolean(params: JSON, name: str) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return False
    if str(value).lower() not in {"true", "false"}:
        raise invalid_request(f"Invalid boolean: {value}", param=name, code="parameter_invalid_empty")
    return str(value).lower() == "true"


def _metadata(params: JSON, current: JSON | None = None) -> JSON:
    """Stripe's metadata update rules: keys merge; an empty string removes a key."""
    result = dict(current or {})
    value = params.get("metadata")
    if value is None:
        return result
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_request("Invalid object: metadata must be a hash of keys and values.", param="metadata")
    if len(value) > 50:
        raise invalid_request("Metadata can have up to 50 keys.", param="metadata")
    for key, item in value.items():
        if len(key) > 40 or len(str(item)) > 500:
            raise invalid_request("Metadata keys are at most 40 and values 500 characters.", param=f"metadata[{key}]")
        if item == "":
            result.pop(key, None)
        else:
            result[key] = str(item)
    return result


class StripeSandbox:
    """In-memory Stripe: objects by id, idempotency records, and the event stream."""

    def __init__(
        self,
        *,
        dispatcher: WebhookDispatcher,
        scheduler: Scheduler,
        lifecycle_delay: Callable[[], float],
        lock: threading.RLock,
    ) -> None:
        self.dispatcher = dispatcher
        self.scheduler = scheduler
        self.lifecycle_delay = lifecycle_delay
        self.lock = lock
        self.objects: BoundedStore[str, JSON] = BoundedStore(MAX_OBJECTS, self._forget)
        self.events: BoundedStore[str, JSON] = BoundedStore(MAX_EVENTS)
        self.authenticated: set[str] = set()  # payment intents whose 3-D Secure was completed
        self.payout_of: dict[str, str] = {}  # balance transaction id -> payout id that paid it out
        self.idempotency: BoundedStore[str, tuple[str, int, JSON]] = BoundedStore(MAX_IDEMPOTENCY_KEYS)
        self.behaviours: dict[str, TestPaymentMethod] = {}  # payment method id -> its test behaviour
        self.return_urls: dict[str, str] = {}  # payment intent id -> where 3-D Secure sends the customer back
        self.base_url = ""  # where the stand-in answers, for the 3-D Secure page's absolute URL

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.events.clear()
            self.behaviours.clear()
            self.return_urls.clear()
            self.authenticated.clear()
            self.payout_of.clear()
            self.idempotency.clear()

    def _forget(self, object_id: str, obj: JSON) -> None:
        """Drop what other maps hold about an object the bounded store evicted."""
        self.behaviours.pop(object_id, None)
        self.payout_of.pop(object_id, None)
        self.return_urls.pop(object_id, None)
        self.authenticated.discard(object_id)

    # ------------------------------------------------------------------ idempotency
    def idempotent(
        self, key: str | None, fingerprint: JSON, handler: Callable[[], tuple[int, JSON]]
    ) -> tuple[int, JSON, bool]:
        """Run ``handler`` once per key; a repeat with the same request replays the first answer."""
        if not key:
            status, body = handler()
            return status, body, False
        if len(key) > 255:
            raise invalid_request("Idempotency keys are at most 255 characters.", code="idempotency_key_in_use")
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        with self.lock:
            if key in self.idempotency:
                first_digest, status, body = self.idempotency[key]
                if first_digest != digest:
                    raise StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                    )
                return status, copy.deepcopy(body), True
            try:
                status, body = handler()
            except StripeError as error:
                status, body = error.status, error.body()
            if status < 500:  # Stripe does not save results of requests that failed on its side
                self.idempotency[key] = (digest, status, copy.deepcopy(body))
            return status, body, False

    # ------------------------------------------------------------------ helpers
    def _get(self, object_id: str, resource: str, param: str = "id") -> JSON:
        obj = (self.events if resource == "event" else self.objects).get(object_id)
        if obj is None or obj.get("object") != resource:
            raise invalid_request(
                f"No such {resource.replace('_', '')}: '{object_id}'",
                param=param,
                code="resource_missing",
                status=404,
            )
        return obj

    def _emit(self, event_type: str, obj: JSON, ctx: RequestContext | None, previous: JSON | None = None) -> None:
        event = stripe_event(
            event_type,
            obj,
            previous_attributes=previous,
            request_id=ctx.request_id if ctx else None,
            idempotency_key=ctx.idempotency_key if ctx else None,
        )
        self.events[event["id"]] = event
        self.dispatcher.send_stripe_event(event, extra_duplicates=ctx.extra_duplicates if ctx else 0)

    def _later(self, callback: Callable[[], None]) -> None:
        def locked() -> None:
            with self.lock:
                callback()

        self.scheduler.call_later(self.lifecycle_delay(), locked)

    def _balance_transaction(
        self,
        *,
        amount: int,
        currency: str,
        source: str,
        kind: str,
        category: str,
        description: str,
        fee: int = 0,
        fee_description: str = "Stripe processing fees",
    ) -> JSON:
        created = _now()
        transaction = stripe_object(
            "balance_transaction",
            id=stripe_id("txn"),
            amount=amount,
            available_on=created + 2 * 86_400,
            created=created,
            currency=currency,
            description=description,
            fee=fee,
            fee_details=[
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": fee_description,
                    "type": "stripe_fee",
                }
            ]
            if fee
            else [],
            net=amount - fee,
            reporting_category=category,
            source=source,
            status="available",
            type=kind,
        )
        self.objects[transaction["id"]] = transaction
        return transaction

    # ------------------------------------------------------------------ payment methods
    def _payment_method(self, value: Any, *, param: str = "payment_method") -> JSON:
        """Resolve a test payment method id to a PaymentMethod object, as Stripe clones ``pm_card_visa``."""
        if not isinstance(value, str) or not value:
            raise invalid_request("Invalid payment_method: expected a PaymentMethod id.", param=param)
        if value in self.objects and self.objects[value].get("object") == "payment_method":
            return self.objects[value]
        behaviour = TEST_PAYMENT_METHODS.get(value)
        if behaviour is None:
            raise invalid_request(
                f"No such PaymentMethod: '{value}'. The sandbox accepts Stripe's test payment methods: "
                f"{', '.join(sorted(TEST_PAYMENT_METHODS))}.",
                param=param,
                code="resource_missing",
            )
        method_id = stripe_id("pm")
        if behaviour.bank_debit:
            details: JSON = {
                "type": "us_bank_account",
                "us_bank_account": {
                    "account_holder_type": "individual",
                    "account_type": "checking",
                    "bank_name": "STRIPE TEST BANK",
                    "last4": behaviour.last4,
                    "routing_number": "110000000",
                },
                "card": None,
            }
        else:
            template = stripe_object("payment_method")["card"]
            template.update(
                brand=behaviour.brand,
                display_brand=behaviour.brand,
                last4=behaviour.last4,
                funding=behaviour.funding,
                country=behaviour.country,
                fingerprint=hashlib.sha256(value.encode()).hexdigest()[:16],
                networks={"available": [behaviour.brand], "preferred": None},
                wallet=None,
            )
            details = {"type": "card", "card": template}
        method = stripe_object(
            "payment_method",
            id=method_id,
            created=_now(),
            metadata={},
            billing_details={
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": None,
                "name": None,
                "phone": None,
                "tax_id": None,
            },
            **details,
        )
        self.objects[method_id] = method
        self.behaviours[method_id] = behaviour
        return method

    # ------------------------------------------------------------------ payment intents
    def create_payment_intent(self, params: JSON, ctx: RequestContext) -> JSON:
        _check_params(params, PAYMENT_INTENT_CREATE_PARAMS)
        amount = _integer(params, "amount", required=True)
        if amount is None:  # _integer raised already; this narrows the type
            raise invalid_request("Missing required param: amount.", param="amount", code="parameter_missing")
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise invalid_request("Missing required param: currency.", param="currency", code="parameter_missing")
        if not _CURRENCY.match(currency):
            raise invalid_request(f"Invalid currency: {currency}.", param="currency", code="parameter_invalid_string")
        minimum = MINIMUM_AMOUNTS.get(currency, 1)
        if amount < minimum:
            raise invalid_request(
                f"Amount must be at least {minimum} {currency} minor units.", param="amount", code="amount_too_small"
            )
        if amount > MAX_AMOUNT:
            raise invalid_request(
                f"Amount must be no more than {MAX_AMOUNT} minor units.", param="amount", code="amount_too_large"
            )
        capture_method = str(params.get("capture_method") or "automatic")
        if capture_method not in {"automatic", "automatic_async", "manual"}:
            raise invalid_request(
                f"Invalid capture_method: must be one of automatic, automatic_async, or manual ({capture_method}).",
                param="capture_method",
            )
        with self.lock:
            method = self._payment_method(params["payment_method"]) if params.get("payment_method") else None
            intent_id = stripe_id("pi")
            created = _now()
            types = params.get("payment_method_types") or ([method["type"]] if method is not None else ["card"])
            intent = stripe_object(
                "payment_intent",
                id=intent_id,
                amount=amount,
                amount_capturable=0,
                amount_received=0,
                automatic_payment_methods=None
                if params.get("payment_method_types")
                else {"allow_redirects": "always", "enabled": True},
                canceled_at=None,
                cancellation_reason=None,
                capture_method=capture_method,
                client_secret=f"{intent_id}_secret_{stripe_id('x')[2:]}",
                confirmation_method=str(params.get("confirmation_method") or "automatic"),
                created=created,
                currency=currency,
                customer=params.get("customer") or None,
                description=params.get("description") or None,
                last_payment_error=None,
                latest_charge=None,
                metadata=_metadata(params),
                next_action=None,
                payment_method=method["id"] if method else None,
                payment_method_configuration_details=None,
                payment_method_types=types,
                processing=None,
                receipt_email=params.get("receipt_email") or None,
                setup_future_usage=params.get("setup_future_usage") or None,
                shipping=params.get("shipping") or None,
                statement_descriptor=params.get("statement_descriptor") or None,
                statement_descriptor_suffix=params.get("statement_descriptor_suffix") or None,
                status="requires_payment_method" if method is None else "requires_confirmation",
                transfer_data=None,
                transfer_group=params.get("transfer_group") or None,
                managed_payments=None,
            )
            self.objects[intent_id] = intent
            self._emit("payment_intent.created", intent, ctx)
            if _boolean(params, "confirm"):
                self._confirm(intent, params, ctx)
            return intent

    def update_payment_intent(self, intent_id: str, params: JSON) -> JSON:
        _check_params(params, PAYMENT_INTENT_UPDATE_PARAMS)
        with self.lock:
            intent = self._get(intent_id, "payment_intent", "intent")
            fixed = {"succeeded", "canceled", "processing", "requires_capture"}
            changing = set(params) - {"metadata", "description", "receipt_email", "shipping", "expand"}
            if changing and intent["status"] in fixed:
                raise invalid_request(
                    f"This PaymentIntent's {', '.join(sorted(changing))} could not be updated because it has a "
                    f"status of {intent['status']}.",
                    code="payment_intent_unexpected_state",
                )
            intent["metadata"] = _metadata(params, intent["metadata"])
            amount = _integer(params, "amount")
            if amount is not None:
                intent["amount"] = amount
            for name in ("description", "receipt_email", "shipping", "customer", "capture_method"):
                if name in params:
                    intent[name] = params[name] or None
            if params.get("currency"):
                intent["currency"] = str(params["currency"]).lower()
            if params.get("payment_method"):
                intent["payment_method"] = self._payment_method(params["payment_method"])["id"]
                intent["status"] = "requires_confirmation"
            return intent

    def confirm_payment_intent(self, intent_id: str, params: JSON, ctx: RequestContext) -> JSON:
        _check_params(params, PAYMENT_INTENT_CONFIRM_PARAMS)
        with self.lock:
            intent = self._get(intent_id, "payment_intent", "intent")
            if intent["status"] == "requires_action":
                # Confirming again after the customer's 3-D Secure challenge completes the payment.
                self.authenticated.add(intent_id)
            elif intent["status"] not in {"requires_payment_method", "requires_confirmation"}:
                raise self._unexpected_state(
                    intent, "confirmed", ["requires_payment_method", "requires_confirmation", "requires_action"]
                )
            if params.get("payment_method"):
                intent["payment_method"] = self._payment_method(params["payment_method"])["id"]
                self.authenticated.discard(intent_id)
            if params.get("capture_method"):
                intent["capture_method"] = params["capture_method"]
            if params.get("receipt_email"):
                intent["receipt_email"] = params["receipt_email"]
            if not intent["payment_method"]:
                raise invalid_request(
                    "You cannot confirm this PaymentIntent because it's missing a payment method. "
                    "Update it with a payment method, then confirm it again.",
                    code="payment_intent_unexpected_state",
                )
            self._confirm(intent, params, ctx)
            return intent

    def authenticate_payment_intent(self, intent_id: str, *, succeed: bool) -> JSON:
        """The customer completes (or fails) the 3-D Secure challenge of a ``requires_action`` intent."""
        with self.lock:
            intent = self._get(intent_id, "payment_intent", "intent")
            if intent["status"] != "requires_action":
                raise self._unexpected_state(intent, "authenticated", ["requires_action"])
            ctx = RequestContext()
            if succeed:
                self.authenticated.add(intent_id)
                with contextlib.suppress(StripeError):  # a decline is recorded on the intent and sent as events
                    self._confirm(intent, {}, ctx)
            else:
                error = StripeError(
                    402,
                    "card_error",
                    "We are unable to authenticate your payment method. Please choose a different payment "
                    "method and try again.",
                    code="payment_intent_authentication_failure",
                )
                previous = {"status": intent["status"], "next_action": intent["next_action"]}
                intent.update(
                    status="requires_payment_method",
                    next_action=None,
                    last_payment_error=self._last_payment_error(error, intent),
                    payment_method=None,
                )
                self._emit("payment_intent.payment_failed", intent, ctx, previous)
            return intent

    def _unexpected_state(self, intent: JSON, done: str, allowed: list[str]) -> StripeError:
        return StripeError(
            400,
            "invalid_request_error",
            f"This PaymentIntent could not be {done} because it has a status of {intent['status']}. "
            f"Only a PaymentIntent with one of the following statuses may be {done}: {', '.join(allowed)}.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": copy.deepcopy(intent)},
        )

    def _last_payment_error(self, error: StripeError, intent: JSON) -> JSON:
        body = error.body()["error"]
        method = self.objects.get(intent["payment_method"] or "")
        if method is not None:
            body["payment_method"] = copy.deepcopy(method)
        return body

    def _confirm(self, intent: JSON, params: JSON, ctx: RequestContext) -> None:
        method = self.objects[intent["payment_method"]]
        behaviour = self.behaviours[method["id"]]
        previous = {"status": intent["status"]}
        if behaviour.three_d_secure and intent["id"] not in self.authenticated:
            if _boolean(params, "off_session"):
                self._decline(intent, method, _AUTHENTICATION_REQUIRED, ctx)
            return_url = params.get("return_url")
            if return_url:
                self.return_urls[intent["id"]] = str(return_url)
            intent["status"] = "requires_action"
            intent["next_action"] = (
                {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "return_url": return_url,
                        "url": f"{self.base_url}/_sandbox/3ds/{intent['id']}",
                    },
                }
                if return_url
                else {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "stripe_3ds2_fingerprint",
                        "three_d_secure_2_source": stripe_id("payatt"),
                        "directory_server_name": behaviour.brand,
                        "server_transaction_id": stripe_id("3ds"),
                    },
                }
            )
            self._emit("payment_intent.requires_action", intent, ctx, previous)
            return
        intent["next_action"] = None
        if behaviour.bank_debit:
            charge = self._charge(intent, method, status="pending", captured=True)
            intent.update(status="processing", latest_charge=charge["id"], processing=None)
            self._emit("charge.pending", charge, ctx)
            self._emit("payment_intent.processing", intent, ctx, previous)
            self._later(lambda: self._settle_bank_debit(intent["id"], behaviour))
            return
        if behaviour.decline:
            self._decline(intent, method, behaviour.decline, ctx)
        manual = intent["capture_method"] == "manual"
        charge = self._charge(intent, method, status="succeeded", captured=not manual)
        intent.update(latest_charge=charge["id"], last_payment_error=None)
        self._emit("charge.succeeded", charge, ctx)
        if manual:
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._emit("payment_intent.amount_capturable_updated", intent, ctx, {**previous, "amount_capturable": 0})
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit("payment_intent.succeeded", intent, ctx, previous)
        if behaviour.dispute:

            def dispute_later() -> None:
                self._open_dispute(charge, amount=None, reason="fraudulent")

            self._later(dispute_later)

    def _settle_bank_debit(self, intent_id: str, behaviour: TestPaymentMethod) -> None:
        intent = self.objects[intent_id]
        charge = self.objects[intent["latest_charge"]]
        if intent["status"] != "processing":
            return
        ctx = RequestContext()
        if behaviour.bank_debit == "success":
            self._capture_charge(charge, charge["amount"])
            charge["status"] = "succeeded"
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit("charge.succeeded", charge, ctx, {"status": "pending"})
            self._emit("payment_intent.succeeded", intent, ctx, {"status": "processing"})
        else:
            code, decline_code, message = _BANK_DEBIT_FAILURE
            charge.update(
                status="failed",
                paid=False,
                captured=False,
                amount_captured=0,
                balance_transaction=None,
                failure_code=code,
                failure_message=message,
            )
            error = StripeError(402, "card_error", message, code=code, decline_code=decline_code)
            intent.update(
                status="requires_payment_method",
                last_payment_error=self._last_payment_error(error, intent),
                payment_method=None,
            )
            self._emit("charge.failed", charge, ctx, {"status": "pending"})
            self._emit("payment_intent.payment_failed", intent, ctx, {"status": "processing"})

    def _decline(self, intent: JSON, method: JSON, decline: tuple[str, str, str], ctx: RequestContext) -> None:
        code, decline_code, message = decline
        charge = self._charge(intent, method, status="failed", captured=False)
        charge.update(
            failure_code=code,
            failure_message=message,
            outcome={
                "advice_code": "try_again_later" if decline_code == "processing_error" else "do_not_try_again",
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "declined_by_network",
                "reason": decline_code,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            },
        )
        error = StripeError(
            402, "card_error", message, code=code, decline_code=decline_code, extra={"charge": charge["id"]}
        )
        previous = {"status": intent["status"], "payment_method": intent["payment_method"]}
        # Stripe detaches the declined method: the error keeps it, the intent needs a new one.
        intent.update(
            status="requires_payment_method",
            latest_charge=charge["id"],
            last_payment_error=self._last_payment_error(error, intent),
            next_action=None,
            payment_method=None,
        )
        self._emit("charge.failed", charge, ctx)
        self._emit("payment_intent.payment_failed", intent, ctx, previous)
        error.extra["payment_intent"] = copy.deepcopy(intent)
        error.extra["payment_method"] = copy.deepcopy(method)
        raise error

    def _charge(self, intent: JSON, method: JSON, *, status: str, captured: bool) -> JSON:
        charge_id = stripe_id("ch")
        behaviour = self.behaviours[method["id"]]
        if method["type"] == "card":
            card = method["card"]
            details: JSON = stripe_object("charge")["payment_method_details"]
            details["card"].update(
                brand=card["brand"],
                network=card["brand"],
                last4=card["last4"],
                funding=card["funding"],
                country=card["country"],
                fingerprint=card["fingerprint"],
                wallet=None,
                amount_authorized=intent["amount"] if status == "succeeded" else None,
                overcapture={"maximum_amount_capturable": intent["amount"], "status": "unavailable"},
                three_d_secure={
                    "authentication_flow": "challenge",
                    "electronic_commerce_indicator": "05",
                    "exemption_indicator": None,
                    "result": "authenticated",
                    "result_reason": None,
                    "transaction_id": stripe_id("3ds")[4:],
                    "version": "2.2.0",
                }
                if behaviour.three_d_secure and intent["id"] in self.authenticated
                else None,
            )
        else:
            details = {"type": method["type"], method["type"]: copy.deepcopy(method[method["type"]])}
        charge = stripe_object(
            "charge",
            id=charge_id,
            amount=intent["amount"],
            amount_captured=0,
            amount_refunded=0,
            balance_transaction=None,
            billing_details=copy.deepcopy(method["billing_details"]),
            calculated_statement_descriptor="SANDBOX",
            captured=False,
            created=_now(),
            currency=intent["currency"],
            customer=intent["customer"],
            description=intent["description"],
            disputed=False,
            failure_code=None,
            failure_message=None,
            metadata=copy.deepcopy(intent["metadata"]),
            outcome={
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": 32,
                "seller_message": "Payment complete.",
                "type": "authorized",
            },
            paid=status == "succeeded",
            payment_intent=intent["id"],
            payment_method=method["id"],
            payment_method_details=details,
            receipt_email=intent["receipt_email"],
            receipt_url=None,
            refunded=False,
            refunds={"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge_id}/refunds"},
            source=None,
            status=status,
            transfer_data=None,
        )
        self.objects[charge_id] = charge
        if captured and status == "succeeded":
            self._capture_charge(charge, intent["amount"])
        return charge

    def _capture_charge(self, charge: JSON, amount: int) -> None:
        transaction = self._balance_transaction(
            amount=amount,
            currency=charge["currency"],
            source=charge["id"],
            kind="charge",
            category="charge",
            description=charge["description"] or f"Payment for {charge['payment_intent']}",
            fee=charge_fee(amount),
        )
        charge.update(
            captured=True,
            amount_captured=amount,
            balance_transaction=transaction["id"],
            # An uncaptured remainder is released, which Stripe reports as refunded.
            amount_refunded=charge["amount"] - amount,
        )

    def capture_payment_intent(self, intent_id: str, params: JSON, ctx: RequestContext) -> JSON:
        _check_params(params, PAYMENT_INTENT_CAPTURE_PARAMS)
        with self.lock:
            intent = self._get(intent_id, "payment_intent", "intent")
            if intent["status"] != "requires_capture":
                raise self._unexpected_state(intent, "captured", ["requires_capture"])
            amount = _integer(params, "amount_to_capture")
            if amount is None:
                amount = intent["amount_capturable"]
            if amount == 0 or amount > intent["amount_capturable"]:
                raise invalid_request(
                    f"The amount_to_capture ({amount}) must be positive and at most the amount capturable "
                    f"({intent['amount_capturable']}).",
                    param="amount_to_capture",
                    code="amount_too_large",
                )
            charge = self.objects[intent["latest_charge"]]
            self._capture_charge(charge, amount)
            intent["metadata"] = _metadata(params, intent["metadata"])
            previous = {"status": intent["status"], "amount_capturable": intent["amount_capturable"]}
            intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
            self._emit("charge.captured", charge, ctx, {"captured": False, "amount_captured": 0})
            self._emit("payment_intent.succeeded", intent, ctx, previous)
            return intent

    def cancel_payment_intent(self, intent_id: str, params: JSON, ctx: RequestContext) -> JSON:
        _check_params(params, PAYMENT_INTENT_CANCEL_PARAMS)
        reason = params.get("cancellation_reason") or None
        if reason not in {None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"}:
            raise invalid_request(
                "Invalid cancellation_reason: must be one of duplicate, fraudulent, requested_by_customer, or "
                "abandoned.",
                param="cancellation_reason",
            )
        with self.lock:
            intent = self._get(intent_id, "payment_intent", "intent")
            cancellable = ["requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"]
            if intent["status"] not in cancellable:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                    f"PaymentIntent with one of the following statuses may be canceled: {', '.join(cancellable)}.",
                    code="payment_intent_unexpected_state",
                    extra={"payment_intent": copy.deepcopy(intent)},
                )
            if intent["status"] == "requires_capture":
                charge = self.objects[intent["latest_charge"]]
                charge.update(amount_refunded=charge["amount"], refunded=True)  # the authorization is released
            previous = {"status": intent["status"]}
            intent.update(
                status="canceled",
                canceled_at=_now(),
                cancellation_reason=reason,
                amount_capturable=0,
                next_action=None,
            )
            self._emit("payment_intent.canceled", intent, ctx, previous)
            return intent

    # ------------------------------------------------------------------ refunds
    def create_refund(self, params: JSON, ctx: RequestContext) -> JSON:
        _check_params(params, REFUND_CREATE_PARAMS)
        with self.lock:
            if params.get("charge"):
                charge = self._get(str(params["charge"]), "charge", "charge")
            elif params.get("payment_intent"):
                intent = self._get(str(params["payment_intent"]), "payment_intent", "payment_intent")
                if intent["status"] != "succeeded" or not intent["latest_charge"]:
                    raise invalid_request(
                        f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                        param="payment_intent",
                        code="charge_not_refundable",
                    )
                charge = self.objects[intent["latest_charge"]]
            else:
                raise invalid_request(
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    code="parameter_missing",
                )
            if charge["status"] != "succeeded" or not charge["captured"]:
                raise invalid_request(
                    f"Charge {charge['id']} has not been captured and cannot be refunded.",
                    param="charge",
                    code="charge_not_refundable",
                )
            if charge["disputed"]:
                raise invalid_request(
                    f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed"
                )
            remaining = charge["amount_captured"] - self._refunded_amount(charge)
            if remaining <= 0:
                raise invalid_request(
                    f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
                )
            amount = _integer(params, "amount")
            if amount is None:
                amount = remaining
            if amount == 0:
                raise invalid_request(
                    "Refund amount must be positive.", param="amount", code="parameter_invalid_integer"
                )
            if amount > remaining:
                raise invalid_request(
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
                    param="amount",
                    code="amount_too_large",
                )
            reason = params.get("reason") or None
            if reason not in {None, "duplicate", "fraudulent", "requested_by_customer"}:
                raise invalid_request(
                    "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer.", param="reason"
                )
            refund_id = stripe_id("re")
            transaction = self._balance_transaction(
                amount=-amount,
                currency=charge["currency"],
                source=refund_id,
                kind="refund",
                category="refund",
                description="REFUND FOR PAYMENT",
            )
            refund = stripe_object(
                "refund",
                id=refund_id,
                amount=amount,
                balance_transaction=transaction["id"],
                charge=charge["id"],
                created=_now(),
                currency=charge["currency"],
                metadata=_metadata(params),
                payment_intent=charge["payment_intent"],
                payment_method=charge["payment_method"],
                reason=reason,
                status="succeeded",
            )
            self.objects[refund_id] = refund
            previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
            self._apply_refunds(charge)
            self._emit("charge.refunded", charge, ctx, previous)
            behaviour = self.behaviours.get(charge["payment_method"])
            if behaviour is not None and behaviour.refund_fails:
                self._later(lambda: self._fail_refund(refund))
            return refund

    def _refunds_of(self, charge: JSON) -> list[JSON]:
        return [
            obj
            for obj in reversed(self.objects.values())
            if obj.get("object") == "refund" and obj.get("charge") == charge["id"]
        ]

    def _refunded_amount(self, charge: JSON) -> int:
        return sum(refund["amount"] for refund in self._refunds_of(charge) if refund["status"] != "failed")

    def _apply_refunds(self, charge: JSON) -> None:
        refunds = self._refunds_of(charge)
        released = charge["amount"] - charge["amount_captured"]
        charge["amount_refunded"] = released + self._refunded_amount(charge)
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"] = {
            "data": copy.deepcopy(refunds[:10]),
            "has_more": len(refunds) > 10,
            "object": "list",
            "url": f"/v1/charges/{charge['id']}/refunds",
        }

    def fail_refund(self, refund_id: str) -> JSON:
        with self.lock:
            refund = self._get(refund_id, "refund", "refund")
            if refund["status"] == "failed":
                raise invalid_request(f"Refund {refund_id} has already failed.")
            self._fail_refund(refund)
            return refund

    def _fail_refund(self, refund: JSON) -> None:
        if refund["status"] == "failed":
            return
        charge = self.objects[refund["charge"]]
        transaction = self._balance_transaction(
            amount=refund["amount"],
            currency=refund["currency"],
            source=refund["id"],
            kind="refund_failure",
            category="refund_failure",
            description="REFUND FAILURE",
        )
        previous = {"status": refund["status"], "failure_reason": None}
        refund.update(
            status="failed",
            failure_reason="expired_or_canceled_card",
            failure_balance_transaction=transaction["id"],
        )
        self._apply_refunds(charge)
        self._emit("charge.refund.updated", refund, None, previous)

    # ------------------------------------------------------------------ disputes
    def open_dispute(self, charge_or_intent_id: str, *, amount: int | None, reason: str) -> JSON:
        with self.lock:
            if charge_or_intent_id.startswith("pi_"):
                intent = self._get(charge_or_intent_id, "payment_intent", "payment_intent")
                if not intent["latest_charge"]:
                    raise invalid_request(f"PaymentIntent {charge_or_intent_id} has no charge to dispute.")
                charge = self.objects[intent["latest_charge"]]
            else:
                charge = self._get(charge_or_intent_id, "charge", "charge")
            if charge["status"] != "succeeded" or not charge["captured"]:
                raise invalid_request(f"Charge {charge['id']} was not captured; only captured charges can be disputed.")
            if charge["disputed"]:
                raise invalid_request(f"Charge {charge['id']} is already disputed.")
            if amount is not None and not 0 < amount <= charge["amount_captured"]:
                raise invalid_request(f"amount must be between 1 and {charge['amount_captured']}.", param="amount")
            return self._open_dispute(charge, amount=amount, reason=reason)

    def _open_dispute(self, charge: JSON, *, amount: int | None, reason: str) -> JSON:
        if charge["disputed"]:
            return charge
        disputed = charge["amount_captured"] if amount is None else amount
        dispute_id = stripe_id("dp")
        transaction = self._balance_transaction(
            amount=-disputed,
            currency=charge["currency"],
            source=dispute_id,
            kind="adjustment",
            category="dispute",
            description=f"Chargeback withdrawal for {charge['id']}",
            fee=DISPUTE_FEE,
            fee_description="Dispute fee",
        )
        created = _now()
        card = charge["payment_method_details"].get("card") or {}
        dispute = stripe_object(
            "dispute",
            id=dispute_id,
            amount=disputed,
            balance_transactions=[copy.deepcopy(transaction)],
            charge=charge["id"],
            created=created,
            currency=charge["currency"],
            evidence_details={
                "due_by": created + 7 * 86_400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
                "enhanced_eligibility": {},
            },
            is_charge_refundable=False,
            metadata={},
            payment_intent=charge["payment_intent"],
            payment_method_details={
                "card": {
                    "brand": card.get("brand", "visa"),
                    "case_type": "chargeback",
                    "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
                    "network": card.get("brand", "visa"),
                },
                "type": "card",
            },
            reason=reason,
            status="needs_response",
            enhanced_eligibility_types=[],
        )
        self.objects[dispute_id] = dispute
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute, None)
        self._emit("charge.dispute.funds_withdrawn", dispute, None)
        return dispute

    def update_dispute(self, dispute_id: str, status: str) -> JSON:
        with self.lock:
            dispute = self._get(dispute_id, "dispute", "dispute")
            if dispute["status"] in {"won", "lost", "warning_closed"}:
                raise invalid_request(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
            allowed = {"under_review", "won", "lost"}
            if status not in allowed:
                raise invalid_request(f"status must be one of {sorted(allowed)} for a Stripe dispute.", param="status")
            previous = {"status": dispute["status"]}
            dispute["status"] = status
            if status == "under_review":
                dispute["evidence_details"].update(has_evidence=True, submission_count=1)
                self._emit("charge.dispute.updated", dispute, None, previous)
                return dispute
            if status == "won":
                transaction = self._balance_transaction(
                    amount=dispute["amount"],
                    currency=dispute["currency"],
                    source=dispute_id,
                    kind="adjustment",
                    category="dispute_reversal",
                    description=f"Chargeback reversal for {dispute['charge']}",
                )
                dispute["balance_transactions"].append(copy.deepcopy(transaction))
            self._emit("charge.dispute.closed", dispute, None, previous)
            if status == "won":
                self._emit("charge.dispute.funds_reinstated", dispute, None)
            return dispute

    # ------------------------------------------------------------------ payouts
    def available_balance(self, currency: str) -> int:
        return sum(
            obj["net"]
            for obj in self.objects.values()
            if obj.get("object") == "balance_transaction"
            and obj["currency"] == currency
            and obj["type"] not in {"payout", "payout_failure"}
            and obj["id"] not in self.payout_of
        )

    def create_payout(self, *, currency: str, amount: int | None, fail: bool) -> JSON:
        currency = currency.lower()
        if not _CURRENCY.match(currency):
            raise invalid_request(f"Invalid currency: {currency}.", param="currency")
        with self.lock:
            balance = self.available_balance(currency)
            if amount is None:
                amount = max((balance - PAYOUT_FEE_FIXED) * 10_000 // (10_000 + PAYOUT_FEE_BASIS_POINTS), 0)
                while amount > 0 and amount + payout_fee(amount) > balance:
                    amount -= 1
            if amount <= 0 or amount + payout_fee(amount) > balance:
                raise invalid_request(
                    f"You have insufficient funds in your Stripe account for this payout: the {currency} balance "
                    f"is {balance} and a payout of {amount} costs {payout_fee(max(amount, 0))} in fees.",
                    code="balance_insufficient",
                )
            fee = payout_fee(amount)
            payout_id = stripe_id("po")
            transaction = self._balance_transaction(
                amount=-amount,
                currency=currency,
                source=payout_id,
                kind="payout",
                category="payout",
                description="STRIPE PAYOUT",
                fee=fee,
                fee_description="Payout fee",
            )
            created = _now()
            payout = stripe_object(
                "payout",
                id=payout_id,
                amount=amount,
                arrival_date=created + 86_400,
                automatic=True,
                balance_transaction=transaction["id"],
                created=created,
                currency=currency,
                destination="ba_sandbox_bank_account",
                metadata={},
                reconciliation_status="in_progress",
                source_type="card",
                status="in_transit",
                trace_id={"status": "pending", "value": None},
            )
            self.objects[payout_id] = payout
            for obj in list(self.objects.values()):
                if (
                    obj.get("object") == "balance_transaction"
                    and obj["currency"] == currency
                    and obj["type"] not in {"payout", "payout_failure"}
                    and obj["id"] not in self.payout_of
                ):
                    self.payout_of[obj["id"]] = payout_id
            self.payout_of[transaction["id"]] = payout_id
            self._later(lambda: self._finish_payout(payout, fail=fail))
            return payout

    def _finish_payout(self, payout: JSON, *, fail: bool) -> None:
        previous = {"status": payout["status"]}
        if not fail:
            payout.update(
                status="paid",
                reconciliation_status="completed",
                trace_id={"status": "supported", "value": stripe_id("trace")[6:]},
            )
            self._emit("payout.paid", payout, None, previous)
            return
        original = self.objects[payout["balance_transaction"]]
        transaction = self._balance_transaction(
            amount=payout["amount"],
            currency=payout["currency"],
            source=payout["id"],
            kind="payout_failure",
            category="payout_reversal",
            description="STRIPE PAYOUT FAILURE",
            fee=-original["fee"],
            fee_description="Payout fee refund",
        )
        for transaction_id, payout_id in list(self.payout_of.items()):
            if payout_id == payout["id"]:
                del self.payout_of[transaction_id]
        payout.update(
            status="failed",
            failure_balance_transaction=transaction["id"],
            failure_code="account_closed",
            failure_message="The bank account has been closed.",
            reconciliation_status="completed",
        )
        self._emit("payout.failed", payout, None, previous)

    # ------------------------------------------------------------------ reads
    def retrieve(self, resource: str, object_id: str, params: JSON) -> JSON:
        _check_params(params, RETRIEVE_PARAMS)
        with self.lock:
            obj = self._get(object_id, resource)
            return self.expand(copy.deepcopy(obj), params.get("expand"))

    def list_objects(self, resource: str, path: str, params: JSON) -> JSON:
        filters = LIST_FILTERS.get(resource, frozenset())
        _check_params(params, LIST_PARAMS | filters)
        limit = _integer(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise invalid_request("This value must be between 1 and 100 (limit).", param="limit")
        with self.lock:
            source = self.events if resource == "event" else self.objects
            items = [
                obj
                for obj in reversed(source.values())
                if obj.get("object") == resource and self._matches(obj, params, filters)
            ]
            start = 0
            if params.get("starting_after"):
                ids = [obj["id"] for obj in items]
                if params["starting_after"] not in ids:
                    raise invalid_request(
                        f"No such object: '{params['starting_after']}'", param="starting_after", code="resource_missing"
                    )
                start = ids.index(params["starting_after"]) + 1
                page = items[start : start + limit]
            elif params.get("ending_before"):
                ids = [obj["id"] for obj in items]
                if params["ending_before"] not in ids:
                    raise invalid_request(
                        f"No such object: '{params['ending_before']}'", param="ending_before", code="resource_missing"
                    )
                end = ids.index(params["ending_before"])
                start = max(end - limit, 0)
                page = items[start:end]
            else:
                page = items[:limit]
            has_more = start + len(page) < len(items) if not params.get("ending_before") else start > 0
            expand = [path[len("data.") :] for path in params.get("expand") or [] if path.startswith("data.")]
            return {
                "object": "list",
                "data": [self.expand(copy.deepcopy(obj), expand) for obj in page],
                "has_more": has_more,
                "url": path,
            }

    def _matches(self, obj: JSON, params: JSON, filters: frozenset[str]) -> bool:
        created = params.get("created")
        if isinstance(created, dict):
            bounds = {key: int(value) for key, value in created.items()}
            if "gt" in bounds and not obj["created"] > bounds["gt"]:
                return False
            if "gte" in bounds and not obj["created"] >= bounds["gte"]:
                return False
            if "lt" in bounds and not obj["created"] < bounds["lt"]:
                return False
            if "lte" in bounds and not obj["created"] <= bounds["lte"]:
                return False
        elif created not in (None, "") and obj["created"] != int(str(created)):
            return False
        for name in filters:
            wanted = params.get(name)
            if wanted in (None, ""):
                continue
            if name == "payout":
                if self.payout_of.get(obj["id"]) != wanted:
                    return False
            elif name == "types":
                if obj.get("type") not in (wanted if isinstance(wanted, list) else [wanted]):
                    return False
            elif name == "delivery_success":
                continue
            elif str(obj.get(name)) != str(wanted):
                return False
        return True

    def expand(self, obj: JSON, paths: Any) -> JSON:
        """Replace id strings by the objects they name along each dotted ``expand`` path."""
        if not paths:
            return obj
        if not isinstance(paths, list):
            paths = [paths]
        for path in paths:
            self._expand_path(obj, str(path).split("."))
        return obj

    def _expand_path(self, obj: Any, parts: list[str]) -> None:
        if not parts or not isinstance(obj, dict):
            return
        head, rest = parts[0], parts[1:]
        value = obj.get(head)
        if isinstance(value, str) and value in self.objects:
            value = copy.deepcopy(self.objects[value])
            obj[head] = value
        if isinstance(value, list):
            for item in value:
                self._expand_path(item, rest)
        else:
            self._expand_path(value, rest)
