"""Webhook delivery for the stand-in: signed POSTs from a background thread, with retries.

Real gateways deliver at least once, out of order, and retry with backoff when the endpoint is
down or answers non-2xx. The app's webhook inbox must cope with all of that, so the stand-in
reproduces it, and can make it worse on request (duplicates, a shuffle window, random delays:
see :class:`SandboxConfig`). Every delivery and every attempt is kept in memory and listed by
``GET /_sandbox/deliveries`` so tests can assert what the app was sent and what it answered.

Nothing here touches Django: the server runs from ``manage.py sandbox_serve`` or a test thread.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sandbox.braintree_notifications import braintree_signed
from sandbox.stripe_events import stripe_signature_header

logger = logging.getLogger("sandbox.delivery")

STRIPE_WEBHOOK_PATH = "/webhooks/stripe/"
BRAINTREE_WEBHOOK_PATH = "/webhooks/braintree/"
# A delivery attempt waits this long for the endpoint (Stripe allows 10+ seconds too).
DELIVERY_TIMEOUT_SECONDS = 10.0
# With a shuffle window, a partly filled window is released after this long, so a quiet
# sandbox still delivers its last few events.
SHUFFLE_FLUSH_SECONDS = 0.5
MAX_RETRY_DELAY_MS = 60_000
# Deliveries kept for GET /_sandbox/deliveries (with their bodies): the most recent ones.
DELIVERY_LOG_LIMIT = 2_000
# Deliveries waiting at most (an endpoint that hangs takes 10 s an attempt while events keep
# coming): past this the oldest waiting one is dropped, as Stripe gives up on a dead endpoint.
MAX_PENDING_DELIVERIES = 2_000


class ConfigError(ValueError):
    """A control-API setting is out of range; the message says which and why."""


@dataclass
class SandboxConfig:
    """Run-time knobs of the stand-in, changed through ``POST /_sandbox/config``.

    Defaults deliver each event once, in order, promptly: chaos is opt-in so a test that does
    not ask for it sees deterministic behaviour.
    """

    webhook_target: str = "http://127.0.0.1:8000"  # base URL; the gateway paths are appended
    webhooks_enabled: bool = True
    duplicate_rate: float = 0.0  # probability that an event is delivered a second time
    shuffle_window: int = 0  # 0/1: in order; N: each delivery is picked at random among the next N
    delay_ms: tuple[int, int] = (0, 0)  # each delivery waits a random time in this range first
    retry_max_attempts: int = 5  # attempts per delivery, the first included
    retry_base_ms: int = 1000  # first retry after this long, doubling up to 60 s
    lifecycle_delay_ms: int = 2000  # settlement, magic-card disputes, refund failures, payouts
    seed: int | None = None  # seeds the chaos and the lifecycle randomness, for reproducible runs

    def update(self, values: dict[str, Any]) -> None:
        """Validate and apply ``values`` all at once (nothing changes if one is invalid)."""
        known = {item.name for item in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown setting(s) {unknown}; known: {sorted(known)}.")
        candidate = SandboxConfig(**{**asdict(self), **values})
        candidate.validate()
        for name in values:
            setattr(self, name, getattr(candidate, name))

    def validate(self) -> None:
        if not isinstance(self.webhook_target, str) or not self.webhook_target.startswith(("http://", "https://")):
            raise ConfigError("webhook_target must be an http(s) base URL, e.g. http://127.0.0.1:8000.")
        self.webhook_target = self.webhook_target.rstrip("/")
        if not isinstance(self.webhooks_enabled, bool):
            raise ConfigError("webhooks_enabled must be true or false.")
        if isinstance(self.duplicate_rate, bool) or not isinstance(self.duplicate_rate, int | float):
            raise ConfigError("duplicate_rate must be a number between 0 and 1.")
        if not 0 <= self.duplicate_rate <= 1:
            raise ConfigError("duplicate_rate must be between 0 and 1.")
        self.duplicate_rate = float(self.duplicate_rate)
        self._check_int("shuffle_window", 0, 1000)
        self._check_int("retry_max_attempts", 1, 20)
        self._check_int("retry_base_ms", 0, MAX_RETRY_DELAY_MS)
        self._check_int("lifecycle_delay_ms", 0, 3_600_000)
        delay = self.delay_ms
        if isinstance(delay, int) and not isinstance(delay, bool):
            delay = (delay, delay)
        if (
            not isinstance(delay, list | tuple)
            or len(delay) != 2
            or not all(isinstance(value, int) and not isinstance(value, bool) for value in delay)
            or not 0 <= delay[0] <= delay[1] <= 600_000
        ):
            raise ConfigError("delay_ms must be [min, max] milliseconds with 0 <= min <= max <= 600000.")
        self.delay_ms = (delay[0], delay[1])
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError("seed must be an integer or null.")

    def _check_int(self, name: str, low: int, high: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name} must be an integer from {low} to {high}.")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["delay_ms"] = list(self.delay_ms)
        return values


@dataclass(frozen=True)
class WebhookCredentials:
    """What signs deliveries: the app's first Stripe endpoint secret and its Braintree key pair."""

    stripe_webhook_secret: str
    braintree_public_key: str
    braintree_private_key: str

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return "WebhookCredentials(***)"


class Scheduler:
    """One thread running callbacks at a later time: the gateways' asynchronous lifecycle steps."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> None:
        with self._condition:
            heapq.heappush(self._heap, (time.monotonic() + max(delay_seconds, 0.0), next(self._counter), callback))
            self._condition.notify_all()

    def pending(self) -> int:
        with self._condition:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._condition.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # one broken step must not stop every later one
                logger.exception("sandbox lifecycle step failed")


@dataclass
class Attempt:
    at: float
    status_code: int | None
    error: str | None = None


@dataclass
class Delivery:
    """One webhook to deliver (a duplicate is a delivery of its own, flagged as such)."""

    id: str
    gateway: str  # "stripe" | "braintree"
    event_id: str  # Stripe event id, or the sandbox's id for a Braintree notification
    event_type: str  # Stripe event type or Braintree notification kind
    url: str
    body: bytes  # the exact body; Stripe re-signs it with a fresh timestamp on every attempt
    content_type: str
    object_id: str | None
    created_at: float
    duplicate: bool = False
    not_before: float = 0.0  # monotonic time before which it is not sent
    queued_at: float = 0.0  # monotonic time it became ready (for the shuffle flush)
    state: str = "pending"  # pending | delivered | failed | skipped (webhooks off) | dropped (backlog full)
    attempts: list[Attempt] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "gateway": self.gateway,
            "event_id": self.event_id,
            "type": self.event_type,
            "object_id": self.object_id,
            "url": self.url,
            "duplicate": self.duplicate,
            "state": self.state,
            "created": self.created_at,
            "attempts": [asdict(attempt) for attempt in self.attempts],
            "status_code": self.attempts[-1].status_code if self.attempts else None,
            "body": self.body.decode("utf-8"),
        }


class WebhookDispatcher:
    """Queues, signs and POSTs webhooks from one background thread, in order unless told otherwise.

    Deliveries are sequential (one endpoint, one connection at a time), so with the default
    config the app receives events in the order they happened; a failed delivery is retried
    later without holding up the ones behind it, which is also how it gets out of order in
    real life.
    """

    def __init__(self, config: SandboxConfig, credentials: WebhookCredentials, rng: random.Random) -> None:
        self.config = config
        self.credentials = credentials
        self.rng = rng
        self._ids = itertools.count(1)
        self._condition = threading.Condition()
        self._queue: list[Delivery] = []
        self._log: deque[Delivery] = deque(maxlen=DELIVERY_LOG_LIMIT)
        self._in_flight = 0
        self._dropped = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=DELIVERY_TIMEOUT_SECONDS + 1)

    # ------------------------------------------------------------------ enqueueing
    def send_stripe_event(self, event: dict[str, Any], *, extra_duplicates: int = 0) -> None:
        body = json.dumps(event, indent=2).encode("utf-8")  # Stripe pretty-prints its payloads
        self._enqueue(
            gateway="stripe",
            event_id=str(event["id"]),
            event_type=str(event["type"]),
            object_id=event.get("data", {}).get("object", {}).get("id"),
            path=STRIPE_WEBHOOK_PATH,
            body=body,
            content_type="application/json; charset=utf-8",
            extra_duplicates=extra_duplicates,
        )

    def send_braintree_notification(
        self, notification_id: str, kind: str, xml: str, *, object_id: str | None, extra_duplicates: int = 0
    ) -> None:
        signature, payload = braintree_signed(
            xml,
            public_key=self.credentials.braintree_public_key,
            private_key=self.credentials.braintree_private_key,
        )
        body = urllib.parse.urlencode({"bt_signature": signature, "bt_payload": payload}).encode("ascii")
        self._enqueue(
            gateway="braintree",
            event_id=notification_id,
            event_type=kind,
            object_id=object_id,
            path=BRAINTREE_WEBHOOK_PATH,
            body=body,
            content_type="application/x-www-form-urlencoded",
            extra_duplicates=extra_duplicates,
        )

    def _enqueue(
        self,
        *,
        gateway: str,
        event_id: str,
        event_type: str,
        object_id: str | None,
        path: str,
        body: bytes,
        content_type: str,
        extra_duplicates: int,
    ) -> None:
        with self._condition:
            copies = 1 + extra_duplicates + (1 if self.rng.random() < self.config.duplicate_rate else 0)
            for copy_number in range(copies):
                delivery = Delivery(
                    id=f"whd_{next(self._ids)}",
                    gateway=gateway,
                    event_id=event_id,
                    event_type=event_type,
                    url=self.config.webhook_target + path,
                    body=body,
                    content_type=content_type,
                    object_id=object_id,
                    created_at=time.time(),
                    duplicate=copy_number > 0,
                )
                self._log.append(delivery)
                if not self.config.webhooks_enabled:
                    delivery.state = "skipped"
                    continue
                low, high = self.config.delay_ms
                delay = self.rng.uniform(low, high) / 1000 if high else 0.0
                delivery.not_before = delivery.queued_at = time.monotonic() + delay
                self._queue.append(delivery)
            while len(self._queue) > MAX_PENDING_DELIVERIES:
                dropped = self._queue.pop(0)
                dropped.state = "dropped"
                self._dropped += 1
                if self._dropped % 100 == 1:
                    logger.warning(
                        "webhook endpoint %s is not keeping up: %d deliveries dropped so far",
                        self.config.webhook_target,
                        self._dropped,
                    )
            self._condition.notify_all()

    # ------------------------------------------------------------------ inspection
    def deliveries(self, *, gateway: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._condition:
            return [
                delivery.as_dict()
                for delivery in self._log
                if (gateway is None or delivery.gateway == gateway)
                and (event_type is None or delivery.event_type == event_type)
            ]

    def pending_count(self) -> int:
        with self._condition:
            return len(self._queue) + self._in_flight

    def clear(self) -> None:
        with self._condition:
            self._queue.clear()
            self._log.clear()

    # ------------------------------------------------------------------ the delivery thread
    def _next_ready(self) -> Delivery | None:
        """The delivery to send now, or None (the caller waits a little and asks again)."""
        now = time.monotonic()
        ready = [delivery for delivery in self._queue if delivery.not_before <= now]
        if not ready:
            return None
        window = self.config.shuffle_window
        if window > 1:
            fresh = [delivery for delivery in ready if not delivery.attempts]
            oldest = min((delivery.queued_at for delivery in fresh), default=now)
            if fresh and len(fresh) < window and now - oldest < SHUFFLE_FLUSH_SECONDS:
                retries = [delivery for delivery in ready if delivery.attempts]
                if not retries:
                    return None
                chosen = retries[0]
            else:
                chosen = self.rng.choice(ready[:window])
        else:
            chosen = ready[0]
        self._queue.remove(chosen)
        return chosen

    def _wait_seconds(self) -> float | None:
        if not self._queue:
            return None
        now = time.monotonic()
        soonest = min(delivery.not_before for delivery in self._queue)
        return max(min(soonest - now, SHUFFLE_FLUSH_SECONDS), 0.01)

    def _run(self) -> None:
        while True:
            with self._condition:
                delivery = None
                while not self._stopped:
                    delivery = self._next_ready()
                    if delivery is not None:
                        break
                    self._condition.wait(self._wait_seconds())
                if self._stopped or delivery is None:
                    return
                self._in_flight += 1
            try:
                attempt = self._post(delivery)
            finally:
                with self._condition:
                    self._in_flight -= 1
            self._record(delivery, attempt)

    def _post(self, delivery: Delivery) -> Attempt:
        headers = {
            "Content-Type": delivery.content_type,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
            if delivery.gateway == "stripe"
            else "Braintree Webhooks (sandbox stand-in)",
        }
        if delivery.gateway == "stripe":
            headers["Stripe-Signature"] = stripe_signature_header(delivery.body, self.credentials.stripe_webhook_secret)
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:  # noqa: S310
                response.read()
                return Attempt(at=time.time(), status_code=response.status)
        except urllib.error.HTTPError as error:
            return Attempt(at=time.time(), status_code=error.code)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return Attempt(at=time.time(), status_code=None, error=str(reason))

    def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        with self._condition:
            delivery.attempts.append(attempt)
            succeeded = attempt.status_code is not None and 200 <= attempt.status_code < 300
            outcome = attempt.status_code if attempt.status_code is not None else attempt.error
            if succeeded:
                delivery.state = "delivered"
                logger.debug("webhook %s %s -> %s", delivery.gateway, delivery.event_type, outcome)
            elif len(delivery.attempts) >= self.config.retry_max_attempts:
                delivery.state = "failed"
                logger.warning(
                    "webhook %s %s -> %s; giving up after %d attempts",
                    delivery.gateway,
                    delivery.event_type,
                    outcome,
                    len(delivery.attempts),
                )
            else:
                backoff_ms = min(self.config.retry_base_ms * 2 ** (len(delivery.attempts) - 1), MAX_RETRY_DELAY_MS)
                delivery.not_before = time.monotonic() + backoff_ms / 1000
                self._queue.append(delivery)
                logger.info(
                    "webhook %s %s -> %s; retry in %.1f s",
                    delivery.gateway,
                    delivery.event_type,
                    outcome,
                    backoff_ms / 1000,
                )
            self._condition.notify_all()
