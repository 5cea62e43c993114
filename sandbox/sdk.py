"""The official SDKs configured for the stand-in, as the app configures them for real gateways.

The traffic generator and the tests talk to the stand-in through these, so what they exercise
is the SDKs' own request building, response parsing and error classes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_stand_in_url(url: str) -> bool:
    """True when ``url`` points at a stand-in on this machine (plain HTTP on a loopback host)."""
    return any(url.startswith(f"http://{host}") for host in LOCAL_HOSTS)


def stripe_client(api_key: str, api_base: str, **options: Any) -> Any:
    """``stripe.StripeClient`` for ``api_base`` (plain http works: the SDK only checks TLS on https)."""
    import stripe

    return stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")}, **options)


def braintree_environment(url: str) -> Any:
    """A ``braintree.Environment`` for a base URL such as ``http://127.0.0.1:8765``.

    The SDK picks http or https from the port alone (https only for "443") and joins host and
    port as strings, so the port must be given as a string.
    """
    import braintree

    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"Not an http(s) base URL: {url!r}")
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    base = f"{parts.scheme}://{parts.hostname}:{port}"
    return braintree.Environment("sandbox-local", parts.hostname, port, base, parts.scheme == "https", None)


def braintree_gateway(url: str, *, merchant_id: str, public_key: str, private_key: str, **options: Any) -> Any:
    import braintree

    return braintree.BraintreeGateway(
        braintree.Configuration(
            environment=braintree_environment(url),
            merchant_id=merchant_id,
            public_key=public_key,
            private_key=private_key,
            **options,
        )
    )
