"""The stand-in HTTP server: Stripe's JSON API, Braintree's XML API and a control API, on one port.

One threaded standard-library server (no dependency to install) answers the real SDKs:
``stripe.StripeClient(api_key, base_addresses={"api": "http://127.0.0.1:8765"})`` and
``braintree.Configuration(environment=braintree.Environment("sandbox-local", "127.0.0.1", "8765",
"http://127.0.0.1:8765", False, None), ...)``. ``/_sandbox/...`` lets tests and the traffic
generator inspect deliveries, inject chaos and trigger what only a card network or a bank
would do (disputes, payouts). See docs/sandbox.md.

Everything is held in memory: the stand-in is a development tool, and a restart starts afresh.
It never receives or keeps card numbers: only test payment method ids and nonces.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import random
import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.braintree_api import BraintreeControlError, BraintreeNotFound, BraintreeSandbox, parse_request_xml
from sandbox.delivery import ConfigError, SandboxConfig, Scheduler, WebhookCredentials, WebhookDispatcher
from sandbox.stripe_api import RESOURCE_PATHS, RequestContext, StripeError, StripeSandbox, invalid_request
from sandbox.stripe_events import STRIPE_API_VERSION, stripe_id

logger = logging.getLogger("sandbox.server")

MAX_REQUEST_BYTES = 1024 * 1024
DUPLICATE_HEADER = "Sandbox-Duplicate-Webhooks"  # per request: deliver its events N extra times (0-5)
_BRAINTREE_PATH = re.compile(r"^/merchants/(?P<merchant>[^/]+)/(?P<rest>.+)$")
_STRIPE_OBJECT_PATH = re.compile(r"^/v1/(?P<resource>[a-z_]+)(?:/(?P<id>[A-Za-z0-9_]+)(?:/(?P<action>[a-z_]+))?)?$")


class SandboxNotConfigured(RuntimeError):
    """The credentials the stand-in must share with the app are missing from the settings."""


@dataclass(frozen=True)
class SandboxCredentials:
    """The secrets the app and the stand-in share; the stand-in checks and signs with them."""

    stripe_api_key: str
    stripe_webhook_secret: str
    braintree_merchant_id: str
    braintree_public_key: str
    braintree_private_key: str

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"SandboxCredentials(braintree_merchant_id={self.braintree_merchant_id!r}, ***)"

    @classmethod
    def from_settings(cls, settings: Any) -> SandboxCredentials:
        """From Django settings: STRIPE_API_KEY, the first STRIPE_WEBHOOK_SECRETS, BRAINTREE_*."""
        secrets = list(getattr(settings, "STRIPE_WEBHOOK_SECRETS", []) or [])
        values = {
            "STRIPE_API_KEY": getattr(settings, "STRIPE_API_KEY", ""),
            "STRIPE_WEBHOOK_SECRETS": secrets[0] if secrets else "",
            "BRAINTREE_MERCHANT_ID": getattr(settings, "BRAINTREE_MERCHANT_ID", ""),
            "BRAINTREE_PUBLIC_KEY": getattr(settings, "BRAINTREE_PUBLIC_KEY", ""),
            "BRAINTREE_PRIVATE_KEY": getattr(settings, "BRAINTREE_PRIVATE_KEY", ""),
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise SandboxNotConfigured(
                f"The sandbox stand-in needs {', '.join(missing)} in the settings (the same values the app uses). "
                "Development settings create them under var/sandbox-credentials.json when STRIPE_API_KEY is unset."
            )
        return cls(
            stripe_api_key=values["STRIPE_API_KEY"],
            stripe_webhook_secret=values["STRIPE_WEBHOOK_SECRETS"],
            braintree_merchant_id=values["BRAINTREE_MERCHANT_ID"],
            braintree_public_key=values["BRAINTREE_PUBLIC_KEY"],
            braintree_private_key=values["BRAINTREE_PRIVATE_KEY"],
        )


class SandboxApp:
    """The stand-in's state and threads, independent of HTTP (the server is a thin shell)."""

    def __init__(self, credentials: SandboxCredentials, config: SandboxConfig | None = None) -> None:
        self.credentials = credentials
        self.config = config or SandboxConfig()
        self.config.validate()
        self.lock = threading.RLock()
        self.rng = random.Random(self.config.seed)  # noqa: S311 (simulation, not security)
        self.scheduler = Scheduler()
        self.dispatcher = WebhookDispatcher(
            self.config,
            WebhookCredentials(
                stripe_webhook_secret=credentials.stripe_webhook_secret,
                braintree_public_key=credentials.braintree_public_key,
                braintree_private_key=credentials.braintree_private_key,
            ),
            self.rng,
        )
        self.stripe = StripeSandbox(
            dispatcher=self.dispatcher, scheduler=self.scheduler, lifecycle_delay=self._lifecycle_delay, lock=self.lock
        )
        self.braintree = BraintreeSandbox(
            merchant_id=credentials.braintree_merchant_id,
            dispatcher=self.dispatcher,
            scheduler=self.scheduler,
            lifecycle_delay=self._lifecycle_delay,
            lock=self.lock,
        )

    def _lifecycle_delay(self) -> float:
        return self.config.lifecycle_delay_ms / 1000

    def start(self) -> None:
        self.scheduler.start()
        self.dispatcher.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.dispatcher.stop()

    def configure(self, values: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(values)
            if "seed" in values:
                self.rng.seed(self.config.seed)
            return self.config.as_dict()

    def reset(self) -> None:
        with self.lock:
            self.stripe.reset()
            self.braintree.reset()
            self.dispatcher.clear()


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        super().__init__(address, SandboxRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs reuse their connections
    server_version = "fintech-sandbox/1"
    server: SandboxHTTPServer

    # ------------------------------------------------------------------ plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is logged by _dispatch, without query strings or headers

    @property
    def app(self) -> SandboxApp:
        return self.server.app

    def _dispatch(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        status = 500
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                status = self._send_json(
                    413, {"error": {"type": "invalid_request_error", "message": "Body too large."}}
                )
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            if path.startswith("/v1/"):
                status = self._stripe(method, path, parts.query, body)
            elif path.startswith("/merchants/"):
                status = self._braintree(method, path, body)
            elif path.startswith("/_sandbox/"):
                status = self._control(method, path, parts.query, body)
            else:
                status = self._send_json(404, {"error": f"No such path: {path}. See docs/sandbox.md."})
        except Exception:
            logger.exception("sandbox: %s %s failed", method, path)
            status = self._send_json(500, {"error": {"type": "api_error", "message": "Sandbox internal error."}})
        finally:
            logger.debug("%s %s %s", method, path, status)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> int:
        return self._send(status, json.dumps(payload, indent=2).encode(), "application/json", headers)

    # ------------------------------------------------------------------ stripe
    def _stripe_authorized(self) -> StripeError | None:
        header = self.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return invalid_request(
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status=401,
            )
        if not hmac.compare_digest(key.encode(), self.app.credentials.stripe_api_key.encode()):
            return invalid_request(f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}", status=401)
        return None

    def _stripe(self, method: str, path: str, query: str, body: bytes) -> int:
        request_id = "req_" + stripe_id("x")[2:16]
        headers = {"Request-Id": request_id, "Stripe-Version": STRIPE_API_VERSION}
        denied = self._stripe_authorized()
        if denied is not None:
            return self._send_json(
                denied.status, denied.body(), {**headers, "WWW-Authenticate": 'Basic realm="Stripe"'}
            )
        try:
            params = decode_form(body.decode("utf-8") if method == "POST" else query)
            duplicates = _duplicates(self.headers.get(DUPLICATE_HEADER))
        except ValueError as error:
            failure = invalid_request(str(error))
            return self._send_json(failure.status, failure.body(), headers)
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        ctx = RequestContext(request_id=request_id, idempotency_key=key, extra_duplicates=duplicates)
        if key:
            headers["Idempotency-Key"] = key

        def handle() -> tuple[int, dict[str, Any]]:
            return 200, self._stripe_route(method, path, params, ctx)

        try:
            status, payload, replayed = self.app.stripe.idempotent(
                key, {"method": method, "path": path, "params": params}, handle
            )
        except StripeError as error:
            status, payload, replayed = error.status, error.body(), False
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return self._send_json(status, payload, headers)

    def _stripe_route(self, method: str, path: str, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        stripe = self.app.stripe
        match = _STRIPE_OBJECT_PATH.match(path)
        resource_path = match["resource"] if match else ""
        resource = RESOURCE_PATHS.get(resource_path)
        if match is None or resource is None:
            raise self._unrecognized(method, path)
        object_id, action = match["id"], match["action"]
        expand = params.get("expand")
        result: dict[str, Any]
        if resource == "payment_intent" and method == "POST":
            if object_id is None:
                result = stripe.create_payment_intent(params, ctx)
            elif action is None:
                result = stripe.update_payment_intent(object_id, params)
            elif action == "confirm":
                result = stripe.confirm_payment_intent(object_id, params, ctx)
            elif action == "capture":
                result = stripe.capture_payment_intent(object_id, params, ctx)
            elif action == "cancel":
                result = stripe.cancel_payment_intent(object_id, params, ctx)
            else:
                raise self._unrecognized(method, path)
            with stripe.lock:
                return stripe.expand(json.loads(json.dumps(result)), expand)
        if resource == "refund" and method == "POST" and object_id is None:
            refund = stripe.create_refund(params, ctx)
            with stripe.lock:
                return stripe.expand(json.loads(json.dumps(refund)), expand)
        if method == "GET" and action is None:
            if object_id is None:
                return stripe.list_objects(resource, path, params)
            return stripe.retrieve(resource, object_id, params)
        raise self._unrecognized(method, path)

    @staticmethod
    def _unrecognized(method: str, path: str) -> StripeError:
        return invalid_request(
            f"Unrecognized request URL ({method}: {path}). The sandbox implements the endpoints listed in "
            "docs/sandbox.md.",
            status=404,
        )

    # ------------------------------------------------------------------ braintree
    def _braintree_authorized(self, merchant_id: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            public_key, _, private_key = base64.b64decode(header[len("Basic ") :]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        credentials = self.app.credentials
        return (
            hmac.compare_digest(public_key.encode(), credentials.braintree_public_key.encode())
            and hmac.compare_digest(private_key.encode(), credentials.braintree_private_key.encode())
            and hmac.compare_digest(merchant_id.encode(), credentials.braintree_merchant_id.encode())
        )

    def _braintree(self, method: str, path: str, body: bytes) -> int:
        match = _BRAINTREE_PATH.match(path)
        if match is None:
            return self._send(404, b"", "application/xml")
        if not self._braintree_authorized(match["merchant"]):
            return self._send(401, b"", "application/xml")  # the SDK raises AuthenticationError
        try:
            request = parse_request_xml(body)
        except (ValueError, SyntaxError):
            return self._send(400, b"", "application/xml")
        braintree = self.app.braintree
        segments = match["rest"].strip("/").split("/")
        try:
            status, xml = self._braintree_route(braintree, method, segments, request)
        except BraintreeNotFound:
            return self._send(404, b"", "application/xml")
        return self._send(status, xml.encode("utf-8"), "application/xml; charset=utf-8")

    @staticmethod
    def _braintree_route(
        braintree: BraintreeSandbox, method: str, segments: list[str], request: dict[str, Any]
    ) -> tuple[int, str]:
        match (method, segments):
            case ("POST", ["transactions"]):
                return braintree.create_transaction(request)
            case ("GET", ["transactions", transaction_id]):
                return braintree.find_transaction(transaction_id)
            case ("PUT", ["transactions", transaction_id, "submit_for_settlement"]):
                return braintree.submit_for_settlement(transaction_id, request)
            case ("PUT", ["transactions", transaction_id, "void"]):
                return braintree.void(transaction_id)
            case ("POST", ["transactions", transaction_id, "refund"]):
                return braintree.refund(transaction_id, request)
            case ("GET", ["disputes", dispute_id]):
                return braintree.find_dispute(dispute_id)
            case ("PUT", ["disputes", dispute_id, "accept"]):
                return braintree.accept_dispute(dispute_id)
            case ("PUT", ["disputes", dispute_id, "finalize"]):
                return braintree.finalize_dispute(dispute_id)
        raise BraintreeNotFound("/".join(segments))

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, query: str, body: bytes) -> int:
        segments = path.strip("/").split("/")[1:]
        if method == "POST" and segments[:1] == ["3ds"]:
            return self._three_d_secure_answer(segments, body)
        if method == "GET" and segments[:1] == ["3ds"] and len(segments) == 2:
            return self._three_d_secure_page(segments[1], query)
        payload: dict[str, Any] = {}
        if method == "POST":
            # JSON only: a web page cannot send it cross-site without a preflight this server refuses.
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                return self._send_json(415, {"error": "The control API takes JSON (Content-Type: application/json)."})
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return self._send_json(400, {"error": "The body is not valid JSON."})
            if not isinstance(payload, dict):
                return self._send_json(400, {"error": "The body must be a JSON object."})
        try:
            return self._control_route(method, segments, urllib.parse.parse_qs(query), payload)
        except (ConfigError, BraintreeControlError) as error:
            return self._send_json(400, {"error": str(error)})
        except StripeError as error:
            return self._send_json(error.status, error.body())
        except BraintreeNotFound as error:
            return self._send_json(404, {"error": f"No Braintree object {error}."})

    def _control_route(
        self, method: str, segments: list[str], query: dict[str, list[str]], payload: dict[str, Any]
    ) -> int:
        app = self.app
        match (method, segments):
            case ("GET", ["health"]):
                return self._send_json(
                    200,
                    {
                        "status": "ok",
                        "pending_deliveries": app.dispatcher.pending_count(),
                        "scheduled_steps": app.scheduler.pending(),
                    },
                )
            case ("GET", ["config"]):
                return self._send_json(200, app.config.as_dict())
            case ("POST", ["config"]):
                return self._send_json(200, app.configure(payload))
            case ("POST", ["reset"]):
                app.reset()
                return self._send_json(200, {"reset": True})
            case ("GET", ["deliveries"]):
                gateway = query.get("gateway", [""])[0] or None
                event_type = query.get("type", [""])[0] or None
                deliveries = app.dispatcher.deliveries(gateway=gateway, event_type=event_type)
                if (query.get("body") or ["0"])[0] not in {"1", "true"}:
                    for delivery in deliveries:
                        delivery.pop("body")
                return self._send_json(200, {"deliveries": deliveries, "pending": app.dispatcher.pending_count()})
            case ("POST", ["disputes"]):
                return self._send_json(200, self._open_dispute(payload))
            case ("POST", ["disputes", dispute_id]):
                return self._send_json(200, self._update_dispute(dispute_id, payload))
            case ("POST", ["payouts"]):
                return self._send_json(200, self._payout(payload))
            case ("POST", ["refunds", refund_id, "fail"]):
                if refund_id.startswith("re_"):
                    refund = app.stripe.fail_refund(refund_id)
                    return self._send_json(200, {"gateway": "stripe", "refund": refund["id"], "status": "failed"})
                credit = app.braintree.fail_refund(refund_id)
                return self._send_json(200, {"gateway": "braintree", "refund": credit.id, "status": credit.status})
            case ("POST", ["subscriptions"]):
                _only(payload, {"price", "plan_id", "payment_method_nonce", "merchant_account_id"})
                subscription = app.braintree.create_subscription(
                    price=str(payload.get("price") or ""),
                    plan_id=str(payload.get("plan_id") or "monthly"),
                    nonce=str(payload.get("payment_method_nonce") or "fake-valid-nonce"),
                    merchant_account_id=payload.get("merchant_account_id"),
                )
                return self._send_json(200, {"gateway": "braintree", "subscription": subscription.id})
            case ("POST", ["subscriptions", subscription_id, "charge"]):
                _only(payload, {"amount"})
                amount = payload.get("amount")
                charge = app.braintree.charge_subscription(subscription_id, None if amount is None else str(amount))
                return self._send_json(200, {"gateway": "braintree", "transaction": charge.id, "status": charge.status})
            case ("POST", ["webhooks", "check"]):
                app.braintree.send_check()
                return self._send_json(200, {"gateway": "braintree", "sent": "check"})
            case ("POST", ["payment_intents", intent_id, "authenticate"]):
                outcome = payload.get("outcome", "succeed")
                if outcome not in {"succeed", "fail"}:
                    raise ConfigError("outcome must be 'succeed' or 'fail'.")
                intent = app.stripe.authenticate_payment_intent(intent_id, succeed=outcome == "succeed")
                return self._send_json(200, {"id": intent["id"], "status": intent["status"]})
        return self._send_json(404, {"error": f"No control endpoint {method} /_sandbox/{'/'.join(segments)}."})

    def _open_dispute(self, payload: dict[str, Any]) -> dict[str, Any]:
        _only(payload, {"charge", "payment_intent", "transaction", "amount", "reason", "kind"})
        target = payload.get("charge") or payload.get("payment_intent")
        if target:
            amount = payload.get("amount")
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
                raise ConfigError("amount is an integer of minor units for a Stripe dispute.")
            reason = str(payload.get("reason") or "fraudulent")
            stripe_reasons = {
                "bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
                "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
                "insufficient_funds", "product_not_received", "product_unacceptable", "subscription_canceled",
                "unrecognized",
            }  # fmt: skip
            if reason not in stripe_reasons:
                raise ConfigError(f"reason must be one of {sorted(stripe_reasons)}.")
            dispute = self.app.stripe.open_dispute(str(target), amount=amount, reason=reason)
            return {
                "gateway": "stripe",
                "dispute": dispute["id"],
                "charge": dispute["charge"],
                "status": dispute["status"],
            }
        if payload.get("transaction"):
            amount = payload.get("amount")
            reason = str(payload.get("reason") or "fraud")
            kind = str(payload.get("kind") or "chargeback")
            if kind not in {"chargeback", "pre_arbitration", "retrieval"}:
                raise ConfigError("kind must be chargeback, pre_arbitration or retrieval.")
            bt_dispute = self.app.braintree.open_dispute(
                str(payload["transaction"]), amount=None if amount is None else str(amount), reason=reason, kind=kind
            )
            return {
                "gateway": "braintree",
                "dispute": bt_dispute.id,
                "transaction": bt_dispute.transaction.id,
                "status": bt_dispute.status,
            }
        raise ConfigError("Give 'charge' or 'payment_intent' (Stripe) or 'transaction' (Braintree).")

    def _update_dispute(self, dispute_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        _only(payload, {"status"})
        status = str(payload.get("status") or "")
        if dispute_id.startswith("dp_"):
            dispute = self.app.stripe.update_dispute(dispute_id, status)
            return {"gateway": "stripe", "dispute": dispute["id"], "status": dispute["status"]}
        bt_dispute = self.app.braintree.update_dispute(dispute_id, status)
        return {"gateway": "braintree", "dispute": bt_dispute.id, "status": bt_dispute.status}

    def _payout(self, payload: dict[str, Any]) -> dict[str, Any]:
        _only(payload, {"gateway", "currency", "amount", "fail"})
        gateway = payload.get("gateway", "stripe")
        if gateway == "stripe":
            amount = payload.get("amount")
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
                raise ConfigError("amount is an integer of minor units for a Stripe payout.")
            payout = self.app.stripe.create_payout(
                currency=str(payload.get("currency") or "usd"), amount=amount, fail=payload.get("fail") is True
            )
            transaction = self.app.stripe.objects[payout["balance_transaction"]]
            return {
                "gateway": "stripe",
                "payout": payout["id"],
                "amount": payout["amount"],
                "fee": transaction["fee"],
                "currency": payout["currency"],
                "status": payout["status"],
            }
        if gateway == "braintree":
            if "amount" in payload or "fail" in payload:
                raise ConfigError("A Braintree disbursement pays out every settled transaction: no amount or fail.")
            disbursement_id, amount_total, transaction_ids = self.app.braintree.disburse(
                currency=payload.get("currency")
            )
            return {
                "gateway": "braintree",
                "disbursement": disbursement_id,
                "amount": str(amount_total),
                "transaction_ids": transaction_ids,
            }
        raise ConfigError("gateway must be 'stripe' or 'braintree'.")

    # ------------------------------------------------------------------ the 3-D Secure page
    def _three_d_secure_page(self, intent_id: str, query: str) -> int:
        if not re.fullmatch(r"pi_[A-Za-z0-9]+", intent_id):
            return self._send(404, b"Not found", "text/plain")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>3-D Secure (sandbox)</title></head><body>"
            f"<h1>3-D Secure test page</h1><p>Payment {intent_id}.</p>"
            f"<form method='post' action='/_sandbox/3ds/{intent_id}/succeed'><button>Complete</button></form>"
            f"<form method='post' action='/_sandbox/3ds/{intent_id}/fail'><button>Fail</button></form>"
            "</body></html>"
        )
        return self._send(
            200,
            page.encode(),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": "default-src 'none'; form-action 'self'"},
        )

    def _three_d_secure_answer(self, segments: list[str], body: bytes) -> int:
        if len(segments) != 3 or segments[2] not in {"succeed", "fail"}:
            return self._send(404, b"Not found", "text/plain")
        intent = self.app.stripe.authenticate_payment_intent(segments[1], succeed=segments[2] == "succeed")
        return_url = self.app.stripe.return_urls.get(intent["id"])
        if not return_url:
            return self._send(200, f"Payment {intent['id']}: {intent['status']}".encode(), "text/plain")
        separator = "&" if "?" in return_url else "?"
        outcome = "succeeded" if intent["status"] in {"succeeded", "requires_capture"} else "failed"
        location = f"{return_url}{separator}payment_intent={intent['id']}&redirect_status={outcome}"
        return self._send(303, b"", "text/plain", {"Location": location})


def _only(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise ConfigError(f"Unknown field(s) {unknown}; allowed: {sorted(allowed)}.")


def _duplicates(value: str | None) -> int:
    if value is None:
        return 0
    if not value.strip().isdigit() or not 0 <= int(value) <= 5:
        raise ValueError(f"{DUPLICATE_HEADER} must be an integer from 0 to 5.")
    return int(value)


def decode_form(text: str) -> dict[str, Any]:
    """Stripe's form encoding (``metadata[order_id]=7``, ``expand[0]=latest_charge``) to nested values."""
    result: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        head, _, tail = key.partition("[")
        path = [head] + ([part.rstrip("]") for part in ("[" + tail).split("[")[1:]] if tail else [])
        node: dict[str, Any] = result
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if part == "":  # "a[]" appends
                part = str(sum(1 for existing in node if existing.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"Invalid array or hash parameter: {key}")
                node = child
    return _lists(result, "")


def _lists(value: Any, name: str) -> Any:
    """Turn dicts keyed 0..n-1 into lists (metadata keeps its keys, even numeric ones)."""
    if not isinstance(value, dict):
        return value
    converted = {key: _lists(item, key) for key, item in value.items()}
    if name != "metadata" and converted and all(key.isdigit() for key in converted):
        indexes = sorted(int(key) for key in converted)
        if indexes == list(range(len(indexes))):
            return [converted[str(index)] for index in indexes]
    return converted


class SandboxServer:
    """A running stand-in: the HTTP server on its thread plus the app's background threads."""

    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.httpd = SandboxHTTPServer((host, port), app)
        app.stripe.base_url = self.httpd.url
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return self.httpd.url

    def start(self) -> SandboxServer:
        self.app.start()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.app.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()
            self.app.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.app.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
