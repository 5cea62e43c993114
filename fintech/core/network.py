"""The client's address, as far as the configured proxies can be trusted.

With ``TRUSTED_PROXY_COUNT = 0`` (the default) X-Forwarded-For is ignored: anyone can send it.
Behind N trusted proxies, each appends the address it received from, so the client is the N-th
entry from the right; entries further left were written by the client and are never used.
Used by the audit trail and by django-axes, so both see the same address.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(address: str) -> str | None:
    """The address in the form PostgreSQL's inet stores it (so audit hashes verify after a round trip):
    no IPv6 zone id, and an IPv4-mapped IPv6 address as plain IPv4."""
    try:
        parsed = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    return parsed.compressed


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid(request.META.get("REMOTE_ADDR") or "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [entry for entry in (request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",") if entry.strip()]
    if len(forwarded) < proxies:
        return remote  # fewer hops than configured: the header did not come through our proxies
    return _valid(forwarded[-proxies]) or remote
