"""Stripe objects, event envelopes and webhook signatures, shaped like the real thing.

The sandbox stand-in and the tests build what Stripe would send from Stripe's own example
objects (``fixtures3.json`` of Stripe's public OpenAPI repository, MIT), so a handler tested
against them sees the fields, nesting and nulls the real API produces, not a hand-written guess.

The resources the sandbox uses are vendored in ``sandbox/data/stripe_fixtures.json`` so a clean
clone works without the shared data folder; any other resource is read, lazily, from the full
fixtures file (``STRIPE_FIXTURES_PATH``, else ``../shared/data/stripe/fixtures3.json`` beside the
project), and a clear :class:`StripeFixturesMissing` says what to do when it is absent.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import secrets
import string
import threading
import time
from pathlib import Path
from typing import Any

__all__ = [
    "STRIPE_API_VERSION",
    "StripeFixturesMissing",
    "stripe_event",
    "stripe_id",
    "stripe_object",
    "stripe_signature_header",
]

# The API version the installed SDK speaks: events carry the version of the endpoint that
# receives them, and the app's SDK is the one that will read them.
try:
    import stripe as _stripe_sdk

    STRIPE_API_VERSION: str = str(_stripe_sdk.api_version)
except ImportError:  # the builders must not need the SDK; the stand-in never imports it otherwise
    STRIPE_API_VERSION = "2026-10-28.endive"

VENDORED_FIXTURES = Path(__file__).resolve().parent / "data" / "stripe_fixtures.json"
SHARED_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "stripe" / "fixtures3.json"

_ID_ALPHABET = string.ascii_letters + string.digits
_cache_lock = threading.Lock()
_vendored: dict[str, Any] | None = None
_shared: dict[str, Any] | None = None


class StripeFixturesMissing(LookupError):
    """A Stripe example object was asked for that neither fixtures file provides."""


def _load_resources(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        resources = json.load(handle)["resources"]
    if not isinstance(resources, dict):
        raise StripeFixturesMissing(f"{path} has no 'resources' mapping; is it Stripe's fixtures3.json?")
    return resources


def _shared_fixtures_path() -> Path:
    configured = os.environ.get("STRIPE_FIXTURES_PATH", "")
    return Path(configured) if configured else SHARED_FIXTURES


def _resource_template(resource: str) -> dict[str, Any]:
    global _vendored, _shared
    with _cache_lock:
        if _vendored is None:
            _vendored = _load_resources(VENDORED_FIXTURES) if VENDORED_FIXTURES.is_file() else {}
        if resource in _vendored:
            return _vendored[resource]
        if _shared is None:
            path = _shared_fixtures_path()
            if not path.is_file():
                raise StripeFixturesMissing(
                    f"No Stripe example object for {resource!r}: it is not vendored in {VENDORED_FIXTURES} and the "
                    f"full fixtures file {path} is missing. Set STRIPE_FIXTURES_PATH to Stripe's fixtures3.json "
                    "(github.com/stripe/openapi), or add the resource to the vendored file."
                )
            _shared = _load_resources(path)
        if resource not in _shared:
            raise StripeFixturesMissing(f"Stripe's fixtures have no resource named {resource!r}.")
        return _shared[resource]


def stripe_id(prefix: str) -> str:
    """A random id in Stripe's format (``pi_`` + 24 letters and digits), unique enough for a sandbox."""
    return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def stripe_object(resource: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of Stripe's example ``resource`` object with top-level ``overrides`` applied.

    Overrides replace whole values (``metadata={"order_id": "42"}`` replaces the metadata dict);
    nested values are copies too, so callers may mutate the result freely.
    """
    obj = copy.deepcopy(_resource_template(resource))
    obj.update(copy.deepcopy(overrides))
    return obj


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The Event envelope Stripe POSTs to a webhook endpoint, around a snapshot of ``obj``.

    ``previous_attributes`` is present only when given, as Stripe sends it only on ``*.updated``
    style events; ``request`` names the API request that caused the event (null ids for events
    Stripe raises on its own, such as a dispute opened by the card network).
    """
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(previous_attributes)
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def stripe_signature_header(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``: ``t=<unix time>,v1=<hex HMAC-SHA256>``.

    The signed string is ``f"{t}.{payload}"`` keyed with the endpoint secret (``whsec_...``), so
    ``stripe.Webhook.construct_event(payload, header, secret)`` accepts it.
    """
    if not secret:
        raise ValueError("A Stripe webhook secret (whsec_...) is required to sign a payload.")
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{signed_at}.{text}".encode(), hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"
