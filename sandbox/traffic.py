"""Realistic payment traffic against the stand-in, through the real Stripe and Braintree SDKs.

The demo dashboard and manual testing need a steady stream of the things that happen to a
payments business: mostly successful card payments, some declines with real decline codes,
3-D Secure challenges, manual captures, full and partial refunds, a few disputes, periodic
payouts. ``manage.py sandbox_traffic`` drives this generator; every call goes through the SDKs
(so the stand-in's answers are parsed exactly as the app parses them) except the control
API calls that stand for what a customer, a card network or a bank would do.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

FIRST_NAMES = ["ada", "grace", "alan", "linus", "margaret", "ken", "barbara", "edsger", "frances", "dennis"]
LAST_NAMES = ["lovelace", "hopper", "turing", "torvalds", "hamilton", "thompson", "liskov", "dijkstra", "allen"]
STRIPE_SUCCESS_CARDS = ["pm_card_visa", "pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit"]
STRIPE_DECLINE_CARDS = [
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedExpiredCard",
    "pm_card_chargeDeclinedIncorrectCvc",
    "pm_card_chargeDeclinedProcessingError",
    "pm_card_chargeDeclinedLostCard",
    "pm_card_chargeDeclinedStolenCard",
]
# Braintree's sandbox declines these amounts with the matching processor response code.
BRAINTREE_DECLINE_AMOUNTS = ["2000.00", "2001.00", "2001.00", "2004.00", "2005.00", "2010.00", "2015.00", "2046.00"]
STRIPE_CURRENCIES = [("usd", 0.7), ("eur", 0.2), ("gbp", 0.1)]
# Weighted scenarios: (name, weight).
STRIPE_SCENARIOS = [
    ("success", 0.74),
    ("decline", 0.10),
    ("three_d_secure", 0.08),
    ("manual_capture", 0.04),
    ("dispute", 0.02),
    ("refund_fails", 0.01),
    ("bank_debit", 0.01),
]
BRAINTREE_SCENARIOS = [
    ("success", 0.86),
    ("decline", 0.09),
    ("failure", 0.02),
    ("settlement_declined", 0.01),
    ("invalid", 0.02),
]
CONNECTION_RETRY_SECONDS = 5.0
STATUS_LINE_SECONDS = 30.0


class TrafficError(RuntimeError):
    """The generator cannot go on (the stand-in is unreachable, or the settings point elsewhere)."""


@dataclass
class TrafficOptions:
    rate: float  # new payments per second, on average (arrivals are random, like real ones)
    duration: float  # seconds; 0 runs until interrupted
    stripe_share: float = 0.7
    seed: int | None = None
    payout_every: float = 30.0  # seconds between payout/disbursement rounds
    progress: bool | None = None  # a tqdm bar; None shows it only on a terminal


@dataclass
class TrafficSummary:
    counts: Counter[str] = field(default_factory=Counter)
    volume: Counter[str] = field(default_factory=Counter)  # currency -> minor units (Stripe) / cents (Braintree)
    started: float = field(default_factory=time.monotonic)

    def lines(self) -> list[str]:
        elapsed = time.monotonic() - self.started
        payments = self.counts["stripe.payments"] + self.counts["braintree.payments"]
        lines = [f"{payments} payments in {elapsed:.0f} s"]
        for name, count in sorted(self.counts.items()):
            lines.append(f"  {name:<40} {count}")
        for currency, minor in sorted(self.volume.items()):
            lines.append(f"  volume {currency.upper():<33} {minor / 100:,.2f}")
        return lines


class SandboxControl:
    """A small JSON client for the stand-in's ``/_sandbox/`` control API."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(payload or {}).encode() if method == "POST" else None
        request = urllib.request.Request(  # noqa: S310 (the configured stand-in URL, http by design)
            f"{self.base_url}/_sandbox/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"{}")
            except ValueError:
                return error.code, {"error": body.decode(errors="replace")}

    def health(self) -> dict[str, Any]:
        status, body = self.request("GET", "health")
        if status != 200:
            raise TrafficError(f"{self.base_url} answered {status} to /_sandbox/health: is it the sandbox stand-in?")
        return body

    def wait_until_up(self, seconds: float) -> None:
        """Wait for the stand-in (started alongside, by the run command) to answer."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.health()
                return
            except (urllib.error.URLError, OSError) as error:
                if time.monotonic() >= deadline:
                    raise TrafficError(
                        f"The sandbox stand-in is not reachable at {self.base_url} "
                        f"({getattr(error, 'reason', error)}). "
                        "Start it with `python manage.py sandbox_serve` (or `make run`), or check that "
                        "STRIPE_API_BASE points at it."
                    ) from None
                time.sleep(0.5)


def wait_for_url(url: str, seconds: float) -> None:
    """Wait until ``url`` answers 200 (the app's health check, before any traffic is made)."""
    if not url.startswith(("http://", "https://")):
        raise TrafficError(f"--start-after needs an http(s) URL, not {url!r}.")
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (checked scheme above)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not up yet, or not healthy yet (urllib raises HTTPError for a 503)
        if time.monotonic() >= deadline:
            raise TrafficError(f"{url} did not answer 200 within {seconds:g} s; no traffic was made.")
        time.sleep(1.0)


def _weighted(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    names, weights = zip(*choices, strict=True)
    return rng.choices(names, weights=weights)[0]


class TrafficGenerator:
    def __init__(
        self,
        *,
        stripe_client: Any,
        braintree_gateway: Any,
        control: SandboxControl,
        options: TrafficOptions,
        log: Callable[[str], None] = print,
    ) -> None:
        self.stripe = stripe_client
        self.braintree = braintree_gateway
        self.control = control
        self.options = options
        self.rng = random.Random(options.seed)  # noqa: S311 (simulation, not security)
        self.log = log
        self.summary = TrafficSummary()
        self._follow_ups: list[tuple[float, int, str, Callable[[], object]]] = []
        self._sequence = itertools.count(1)
        self._stripe_currencies: set[str] = set()
        self._braintree_disputes: list[str] = []

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event | None = None) -> TrafficSummary:
        stop = stop or threading.Event()
        options = self.options
        total = round(options.rate * options.duration) if options.duration else None
        bar = self._progress_bar(total)
        start = time.monotonic()
        end = start + options.duration if options.duration else math.inf
        next_payment = start + self.rng.expovariate(options.rate) if options.rate > 0 else math.inf
        next_payout = start + options.payout_every
        next_sweep = start + 15.0
        next_status = start + STATUS_LINE_SECONDS
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= end:
                    break
                if now >= next_payment:
                    self._guarded("payment", self._new_payment)
                    next_payment += self.rng.expovariate(options.rate)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(self._postfix(), refresh=False)
                while self._follow_ups and self._follow_ups[0][0] <= now:
                    _, _, name, action = heapq.heappop(self._follow_ups)
                    self._guarded(name, action)
                if now >= next_payout:
                    self._guarded("payouts", self._payouts)
                    next_payout = now + options.payout_every
                if now >= next_sweep:
                    self._guarded("disputes", self._resolve_disputes)
                    next_sweep = now + 15.0
                if bar is None and now >= next_status:
                    self.log("traffic | " + self._postfix())
                    next_status = now + STATUS_LINE_SECONDS
                upcoming = min(next_payment, end, next_payout, next_sweep)
                if self._follow_ups:
                    upcoming = min(upcoming, self._follow_ups[0][0])
                stop.wait(max(min(upcoming - time.monotonic(), 1.0), 0.0))
        finally:
            if bar is not None:
                bar.close()
        self.summary.counts["follow_ups_not_run"] += len(self._follow_ups)
        return self.summary

    def _progress_bar(self, total: int | None) -> Any:
        import sys

        from tqdm import tqdm

        show = self.options.progress if self.options.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        return tqdm(total=total, unit="payment", dynamic_ncols=True, desc="sandbox traffic")

    def _postfix(self) -> str:
        counts = self.summary.counts
        return (
            f"ok={counts['stripe.succeeded'] + counts['braintree.submitted_for_settlement']} "
            f"declined={counts['stripe.declined'] + counts['braintree.declined']} "
            f"3ds={counts['stripe.requires_action']} refunds={counts['stripe.refunds'] + counts['braintree.refunds']} "
            f"disputes={counts['disputes.opened']} payouts={counts['payouts']} errors={counts['errors']}"
        )

    def _later(self, seconds: float, name: str, action: Callable[[], object]) -> None:
        heapq.heappush(self._follow_ups, (time.monotonic() + seconds, next(self._sequence), name, action))

    def _guarded(self, name: str, action: Callable[[], object]) -> None:
        """Run one step; an unexpected error is counted and logged, and the stream goes on."""
        import braintree
        import stripe

        try:
            action()
        except (stripe.APIConnectionError, braintree.exceptions.UnexpectedError, ConnectionError, OSError) as error:
            self.summary.counts["errors"] += 1
            if not self.options.duration:
                self.log(f"traffic | stand-in unreachable during {name} ({type(error).__name__}); retrying")
                time.sleep(CONNECTION_RETRY_SECONDS)
                return
            raise TrafficError(
                f"Lost the sandbox stand-in during {name}: {type(error).__name__}. "
                "Is `manage.py sandbox_serve` running?"
            ) from None
        except (stripe.StripeError, braintree.exceptions.BraintreeError, TrafficError) as error:
            self.summary.counts["errors"] += 1
            self.log(f"traffic | {name} failed: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ one payment
    def _customer(self) -> tuple[str, str]:
        sequence = next(self._sequence)
        email = f"{self.rng.choice(FIRST_NAMES)}.{self.rng.choice(LAST_NAMES)}{sequence % 997}@example.com"
        order_id = f"ORD-{datetime.now(UTC):%Y%m%d}-{sequence:06d}"
        return email, order_id

    def _amount_minor(self) -> int:
        """Basket sizes spread like a web shop's: many small ones, a long tail of large ones."""
        amount = int(math.exp(self.rng.gauss(math.log(3500), 0.9)))
        amount = min(max(amount, 100), 500_000)
        return amount - amount % 100 + 99 if self.rng.random() < 0.6 else amount

    def _new_payment(self) -> None:
        if self.rng.random() < self.options.stripe_share:
            self._stripe_payment()
        else:
            self._braintree_payment()

    def _stripe_payment(self) -> None:
        import stripe

        scenario = _weighted(self.rng, STRIPE_SCENARIOS)
        email, order_id = self._customer()
        currency = _weighted(self.rng, STRIPE_CURRENCIES)
        amount = self._amount_minor()
        method = {
            "success": self.rng.choice(STRIPE_SUCCESS_CARDS),
            "decline": self.rng.choice(STRIPE_DECLINE_CARDS),
            "three_d_secure": "pm_card_threeDSecure2Required",
            "manual_capture": self.rng.choice(STRIPE_SUCCESS_CARDS),
            "dispute": "pm_card_createDispute",
            "refund_fails": "pm_card_refundFail",
            "bank_debit": "pm_usBankAccount_success",
        }[scenario]
        if scenario == "bank_debit":
            currency = "usd"
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method": method,
            "confirm": True,
            "description": f"Order {order_id}",
            "receipt_email": email,
            "metadata": {"order_id": order_id, "customer_email": email, "source": "sandbox_traffic"},
            "capture_method": "manual" if scenario == "manual_capture" else "automatic",
        }
        self.summary.counts["stripe.payments"] += 1
        self._stripe_currencies.add(currency)
        try:
            intent = self.stripe.v1.payment_intents.create(params=params)
        except stripe.CardError as error:
            self.summary.counts["stripe.declined"] += 1
            decline_code = error.error.decline_code if error.error is not None else None
            self.summary.counts[f"stripe.declined.{decline_code or error.code}"] += 1
            return
        self.summary.counts[f"stripe.{intent.status}"] += 1
        if intent.status == "succeeded":
            self.summary.volume[currency] += amount
            # A disputed charge cannot be refunded (Stripe refuses), so the dispute card is left alone.
            if scenario == "refund_fails" or (scenario != "dispute" and self.rng.random() < 0.12):
                self._later(self.rng.uniform(2, 10), "stripe refund", lambda: self._stripe_refund(intent.id, amount))
        elif intent.status == "requires_action":
            self._later(self.rng.uniform(1, 3), "3-D Secure", lambda: self._stripe_authenticate(intent.id))
        elif intent.status == "requires_capture":
            self._later(self.rng.uniform(1, 4), "capture", lambda: self._stripe_capture(intent.id, amount))

    def _stripe_authenticate(self, intent_id: str) -> None:
        import stripe

        roll = self.rng.random()
        if roll < 0.85:  # the customer passes the challenge; the app confirms again
            try:
                intent = self.stripe.v1.payment_intents.confirm(intent_id)
            except stripe.CardError:
                self.summary.counts["stripe.declined"] += 1
                return
            self.summary.counts[f"stripe.3ds.{intent.status}"] += 1
        elif roll < 0.95:
            self.control.request("POST", f"payment_intents/{intent_id}/authenticate", {"outcome": "fail"})
            self.summary.counts["stripe.3ds.failed"] += 1
        else:
            self.stripe.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": "abandoned"})
            self.summary.counts["stripe.3ds.abandoned"] += 1

    def _stripe_capture(self, intent_id: str, amount: int) -> None:
        if self.rng.random() < 0.2:
            self.stripe.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": "requested_by_customer"})
            self.summary.counts["stripe.canceled"] += 1
            return
        partial = self.rng.random() < 0.3
        captured = max(amount * self.rng.randint(50, 95) // 100, 100) if partial else amount
        self.stripe.v1.payment_intents.capture(intent_id, params={"amount_to_capture": captured})
        self.summary.counts["stripe.captured.partial" if partial else "stripe.captured"] += 1

    def _stripe_refund(self, intent_id: str, amount: int) -> None:
        partial = self.rng.random() < 0.5 and amount > 200
        params: dict[str, Any] = {"payment_intent": intent_id, "reason": "requested_by_customer"}
        if partial:
            params["amount"] = amount * self.rng.randint(10, 60) // 100
        self.stripe.v1.refunds.create(params=params)
        self.summary.counts["stripe.refunds"] += 1
        self.summary.counts["stripe.refunds.partial" if partial else "stripe.refunds.full"] += 1

    def _braintree_payment(self) -> None:
        scenario = _weighted(self.rng, BRAINTREE_SCENARIOS)
        email, order_id = self._customer()
        cents = self._amount_minor()
        amount = f"{Decimal(cents) / 100:.2f}"
        nonce = "fake-valid-nonce"
        if scenario == "decline":
            amount = self.rng.choice(BRAINTREE_DECLINE_AMOUNTS)
        elif scenario == "failure":
            amount = "3000.00"
        elif scenario == "settlement_declined":
            amount = "4001.00"
        elif scenario == "invalid":
            nonce = "fake-luhn-invalid-nonce"
        self.summary.counts["braintree.payments"] += 1
        result = self.braintree.transaction.sale(
            {
                "amount": amount,
                "payment_method_nonce": nonce,
                "order_id": order_id,
                "customer": {"email": email},
                "options": {"submit_for_settlement": True},
            }
        )
        if result.is_success:
            transaction = result.transaction
            self.summary.counts[f"braintree.{transaction.status}"] += 1
            self.summary.volume["usd"] += int(Decimal(amount) * 100)
            roll = self.rng.random()
            if roll < 0.10:
                self._later(self.rng.uniform(5, 15), "braintree refund", lambda: self._braintree_refund(transaction.id))
            elif roll < 0.12:
                self._later(
                    self.rng.uniform(5, 10), "braintree dispute", lambda: self._braintree_dispute(transaction.id)
                )
            return
        if result.transaction is not None:
            self.summary.counts["braintree.declined"] += 1
            self.summary.counts[
                f"braintree.{result.transaction.status}.{result.transaction.processor_response_code}"
            ] += 1
        else:
            self.summary.counts["braintree.invalid"] += 1

    def _braintree_refund(self, transaction_id: str, attempt: int = 1) -> None:
        transaction = self.braintree.transaction.find(transaction_id)
        if transaction.status != "settled":
            if attempt < 5:
                self._later(5, "braintree refund", lambda: self._braintree_refund(transaction_id, attempt + 1))
            return
        partial = self.rng.random() < 0.5
        amount = (transaction.amount * self.rng.randint(10, 60) / 100).quantize(Decimal("0.01")) if partial else None
        result = self.braintree.transaction.refund(transaction_id, str(amount) if amount else None)
        if result.is_success:
            self.summary.counts["braintree.refunds"] += 1
            self.summary.counts["braintree.refunds.partial" if partial else "braintree.refunds.full"] += 1
            if self.rng.random() < 0.05:
                refund_id = result.transaction.id
                self._later(
                    1, "braintree refund failure", lambda: self._control_ok("POST", f"refunds/{refund_id}/fail")
                )
        else:
            self.summary.counts["braintree.refund_rejected"] += 1

    def _braintree_dispute(self, transaction_id: str) -> None:
        status, body = self.control.request("POST", "disputes", {"transaction": transaction_id})
        if status == 200:
            self.summary.counts["disputes.opened"] += 1
            self._braintree_disputes.append(body["dispute"])

    def _control_ok(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any] | None:
        status, body = self.control.request(method, path, payload)
        return body if status == 200 else None

    # ------------------------------------------------------------------ what banks and networks do
    def _resolve_disputes(self) -> None:
        disputes = self.stripe.v1.disputes.list(params={"limit": 100})
        for dispute in disputes.data:
            if dispute.status == "needs_response":
                self.summary.counts["disputes.opened"] += 1
                self._control_ok("POST", f"disputes/{dispute.id}", {"status": "under_review"})
            elif dispute.status == "under_review" and self.rng.random() < 0.5:
                outcome = self.rng.choice(["won", "lost"])
                if self._control_ok("POST", f"disputes/{dispute.id}", {"status": outcome}):
                    self.summary.counts[f"disputes.{outcome}"] += 1
        for dispute_id in list(self._braintree_disputes):
            outcome = self.rng.choice(["won", "lost", "accepted", "under_review"])
            if self._control_ok("POST", f"disputes/{dispute_id}", {"status": outcome}) and outcome != "under_review":
                self.summary.counts[f"disputes.{outcome}"] += 1
                self._braintree_disputes.remove(dispute_id)

    def _payouts(self) -> None:
        for currency in sorted(self._stripe_currencies):
            if self._control_ok("POST", "payouts", {"gateway": "stripe", "currency": currency}):
                self.summary.counts["payouts"] += 1
        if self._control_ok("POST", "payouts", {"gateway": "braintree", "currency": "USD"}):
            self.summary.counts["payouts"] += 1
